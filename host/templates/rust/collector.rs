//! `{{name}}`: a wasmeter collector. Emits one gauge `heartbeat` = 1 per
//! tick, for the resource named by the setting `resource_id` (default
//! `localhost`).

use wasmeter_guest::{Batch, BatchBuilder, Collector, Error, SampleType, Settings};

struct Plugin {
    resource_id: String,
}

impl Collector for Plugin {
    fn init(settings: Settings) -> Result<Self, Error> {
        Ok(Plugin {
            resource_id: settings.get("resource_id").unwrap_or("localhost").to_owned(),
        })
    }

    /// `now_ns`: the tick's time, ns since the Unix epoch, UTC.
    fn collect(&mut self, now_ns: i64) -> Result<Batch, Error> {
        let mut b = BatchBuilder::new();
        let s = b.series("heartbeat", &self.resource_id, "1", SampleType::Gauge, &[]);
        b.push(s, now_ns, 1.0);
        Ok(b.finish())
    }
}

wasmeter_guest::export_collector!(Plugin);
