//! The rollup engine's write-ahead log: every sample batch the sink
//! receives in `wasmeter run`, appended before it is rolled up, so that a
//! crash (kill -9, OOM kill, panic, power loss of the OS's written-back
//! part) loses none of the measures accepted since the last checkpoint.
//! Left out: the samples refused as future (stamped more than `max_future`
//! after the wall clock when they came, so a replay later cannot take
//! them), and wasmeter's own `wasmeter.rollup.*` / `wasmeter.alarm.*`
//! counters, which start again at a restart anyway.
//!
//! The log is `DATA_DIR/open-buckets.wal`: one Arrow IPC stream of batches
//! in the sample schema ([`crate::batch::schema`]), each with its own
//! dictionaries. It holds what came after the state file
//! (`open-buckets.arrow`) was last saved: a checkpoint, a reload that
//! changes the archive settings, policies or rules, `data_dir` or turns the
//! log on, or a clean stop saves
//! the state and then removes the log, and the next batch starts a new
//! one. A start replays it into the restored state (see
//! [`RollupEngine::replay_samples`](crate::rollup::RollupEngine::replay_samples)),
//! saves the state and removes it.
//!
//! Each batch is flushed to the OS before the engine sees it, so a crash
//! of the process loses none. For a crash of the machine (power loss, a
//! kernel panic) the log is also `fsync`ed: at most `[archive]
//! wal_fsync_delay` (default 1 s; `0s`: after every batch, as InfluxDB's
//! `wal-fsync-delay` default) after a batch was appended, on the batch's
//! append or the sink's next tick ([`Wal::sync_if_due`]); the data
//! directory too, once the log is created. So a power loss loses at most
//! the measures of the last `wal_fsync_delay` plus one tick. A batch cut
//! off by a crash in the middle of its write is the log's last: it is
//! reported and left out, the batches before it are replayed.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::Context;
use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

/// The log's file name in the data directory.
pub const WAL_FILE: &str = "open-buckets.wal";

/// The log being written.
pub struct Wal {
    path: PathBuf,
    /// Open from the first batch after a [`Wal::reset`] on.
    writer: Option<StreamWriter<BufWriter<File>>>,
    /// The file's length up to the end of the last batch appended whole.
    whole: u64,
    /// A batch was appended since the last `fsync`.
    unsynced: bool,
    /// The file was created since the last `fsync`: the directory entry
    /// needs one too.
    created: bool,
    /// Wall time of the last `fsync`, ns (`i64::MIN`: none yet).
    last_sync: i64,
    /// `fsync`s done.
    syncs: u64,
}

/// What [`replay`] read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Batches handed to the callback.
    pub batches: usize,
    /// Their rows (samples).
    pub samples: usize,
    /// Why reading stopped before the end: the log's last batch was cut
    /// off (a crash in the middle of its write) or is unreadable.
    pub torn: Option<String>,
}

impl Wal {
    /// The log in `data_dir` (the file is created by the first append).
    pub fn new(data_dir: &Path) -> Self {
        Wal {
            path: data_dir.join(WAL_FILE),
            writer: None,
            whole: 0,
            unsynced: false,
            created: false,
            last_sync: i64::MIN,
            syncs: 0,
        }
    }

    /// `fsync`s of the log done so far (the file's data, and the data
    /// directory after the file was created).
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// `fsync`s the log when a batch appended since the last one is not on
    /// disk yet and `delay` (ns; 0: every time) has passed since the last
    /// one; `now` is the wall clock, ns. Returns whether it synced.
    ///
    /// A clock set back before the last `fsync` makes it due.
    ///
    /// # Errors
    /// The `fsync` failed (the disk is failing or full): what the log
    /// holds may not survive a power loss, even after a later `fsync`
    /// succeeds (the kernel may have dropped the pages), so the caller
    /// should checkpoint. The log is closed, as after a failed append; the
    /// next append reopens it.
    pub fn sync_if_due(&mut self, now: i64, delay: i64) -> anyhow::Result<bool> {
        let waited = now.saturating_sub(self.last_sync);
        if !self.unsynced || (now >= self.last_sync && waited < delay) {
            return Ok(false);
        }
        let Some(writer) = &mut self.writer else {
            return Ok(false);
        };
        let result = writer.get_mut().get_ref().sync_data().and_then(|()| {
            match self.path.parent().filter(|_| self.created) {
                Some(dir) => crate::archive::sync_dir(dir),
                None => Ok(()),
            }
        });
        if let Err(e) = result {
            self.writer = None;
            return Err(e).with_context(|| format!("cannot fsync {}", self.path.display()));
        }
        self.syncs += 1;
        self.unsynced = false;
        self.created = false;
        self.last_sync = now;
        Ok(true)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The log's size in bytes up to its last whole batch (0 after a
    /// reset).
    pub fn size(&self) -> u64 {
        self.whole
    }

    /// Appends `batch` and flushes it to the OS.
    ///
    /// # Errors
    /// I/O and Arrow errors, with the path. The log is then closed; the
    /// next append cuts off what the failed one left (part of a message)
    /// and starts a new stream after the last whole batch.
    pub fn append(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let result = self.try_append(batch);
        if result.is_err() {
            self.writer = None;
        }
        result.with_context(|| format!("write-ahead log {}", self.path.display()))
    }

    fn try_append(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                // The data directory may not exist yet (a first start, a
                // reload that moved it): made, as the state file does.
                if let Some(dir) = self.path.parent() {
                    crate::archive::create_dir_synced(dir)?;
                }
                self.created |= self.whole == 0;
                let mut file = File::options()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(&self.path)?;
                file.set_len(self.whole)?;
                file.seek(SeekFrom::Start(self.whole))?;
                let w = StreamWriter::try_new(BufWriter::new(file), &batch.schema())?;
                self.writer.insert(w)
            }
        };
        writer.write(batch)?;
        writer.flush()?;
        // Flushed: the file's position is the end of what was written.
        self.whole = writer.get_mut().get_mut().stream_position()?;
        self.unsynced = true;
        Ok(())
    }

    /// Removes the log (and `fsync`s its directory, so that a power loss
    /// does not bring it back beside the newer state file): the state file
    /// saved just now holds what it had.
    ///
    /// # Errors
    /// The file exists but cannot be removed.
    pub fn reset(&mut self) -> anyhow::Result<()> {
        self.writer = None;
        self.whole = 0;
        self.unsynced = false;
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", self.path.display())),
            Ok(()) => match self.path.parent() {
                Some(dir) => crate::archive::sync_dir(dir)
                    .with_context(|| format!("cannot fsync {}", dir.display())),
                None => Ok(()),
            },
        }
    }
}

/// Reads the log in `data_dir`, if there is one, handing every whole batch
/// to `each` in the order written.
///
/// # Errors
/// The file exists but cannot be opened. A damaged tail is not an error:
/// it ends the replay and is reported in [`Replayed::torn`].
pub fn replay(data_dir: &Path, mut each: impl FnMut(RecordBatch)) -> anyhow::Result<Replayed> {
    let path = data_dir.join(WAL_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replayed::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let len = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let read = Rc::new(Cell::new(0u64));
    let mut input = Counted {
        inner: BufReader::new(file),
        read: Rc::clone(&read),
    };
    let mut done = Replayed::default();
    // The end of the last whole message read.
    let mut good = 0u64;
    let torn =
        |good: u64, why: &dyn std::fmt::Display| Some(format!("at byte {good} of {len}: {why}"));
    // One stream per writer opened since the last reset, one after another:
    // a stream's reader stops at the next one's schema with an error, and
    // the next is read from the end of the last whole batch.
    let mut stopped: Option<arrow::error::ArrowError> = None;
    while good < len {
        let stream = match StreamReader::try_new(&mut input, None) {
            Ok(s) => s,
            Err(e) => {
                done.torn = torn(good, stopped.as_ref().unwrap_or(&e));
                return Ok(done);
            }
        };
        good = read.get();
        stopped = None;
        for batch in stream {
            match batch {
                Ok(b) => {
                    good = read.get();
                    done.batches += 1;
                    done.samples += b.num_rows();
                    each(b);
                }
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            }
        }
        if stopped.is_some() {
            input
                .inner
                .seek(SeekFrom::Start(good))
                .with_context(|| format!("cannot read {}", path.display()))?;
            read.set(good);
            continue;
        }
        // The writer never ends its stream: the reader stops at the end of
        // the file, having read part of a message if the last was cut off.
        if read.get() > good {
            done.torn = torn(good, &"a batch cut off");
            return Ok(done);
        }
    }
    Ok(done)
}

/// A reader that counts the bytes it hands out.
struct Counted<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Samples;
    use crate::bindings::{SampleType, WitBatch, WitSeries};

    fn samples(resource: &str, timestamps: Vec<i64>, values: Vec<f64>) -> RecordBatch {
        let batch = WitBatch {
            series: vec![WitSeries {
                metric: "m".into(),
                resource_id: resource.into(),
                unit: "1".into(),
                type_: SampleType::Gauge,
                attributes: vec![("k".into(), "v".into())],
            }],
            series_index: vec![0; timestamps.len()],
            timestamps,
            values,
        };
        Samples::from_wit(batch).unwrap().batch().clone()
    }

    fn read_all(dir: &Path) -> (Vec<RecordBatch>, Replayed) {
        let mut got = Vec::new();
        let r = replay(dir, |b| got.push(b)).unwrap();
        (got, r)
    }

    #[test]
    fn batches_of_other_dictionaries_come_back_as_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(dir.path());
        let a = samples("host-a", vec![1, 2], vec![1.5, 2.5]);
        let b = samples("host-b", vec![3], vec![-0.0]);
        wal.append(&a).unwrap();
        wal.append(&b).unwrap();
        let (got, r) = read_all(dir.path());
        assert_eq!(got, [a, b]);
        assert_eq!(
            r,
            Replayed {
                batches: 2,
                samples: 3,
                torn: None
            }
        );
    }

    #[test]
    fn no_log_replays_nothing_and_reset_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_all(dir.path()).1, Replayed::default());
        let mut wal = Wal::new(dir.path());
        wal.reset().unwrap();
        wal.append(&samples("h", vec![1], vec![1.0])).unwrap();
        assert!(wal.path().exists());
        wal.reset().unwrap();
        assert!(!wal.path().exists());
        // The next append starts a new log of its own.
        let c = samples("h", vec![5], vec![5.0]);
        wal.append(&c).unwrap();
        assert_eq!(read_all(dir.path()).0, [c]);
    }

    #[test]
    fn a_batch_cut_off_by_a_crash_is_left_out_and_the_ones_before_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(dir.path());
        let a = samples("host-a", vec![1, 2], vec![1.5, 2.5]);
        wal.append(&a).unwrap();
        let whole = std::fs::metadata(wal.path()).unwrap().len();
        wal.append(&samples("host-b", vec![3, 4, 5], vec![3.0, 4.0, 5.0]))
            .unwrap();
        let end = std::fs::metadata(wal.path()).unwrap().len();
        drop(wal);
        // Every cut inside the second batch's bytes keeps the first batch.
        let bytes = std::fs::read(dir.path().join(WAL_FILE)).unwrap();
        for cut in whole + 1..end {
            std::fs::write(dir.path().join(WAL_FILE), &bytes[..cut as usize]).unwrap();
            let (got, r) = read_all(dir.path());
            assert_eq!(got, std::slice::from_ref(&a), "cut at {cut}");
            assert!(r.torn.is_some(), "cut at {cut}");
        }
        // Cut at the batch boundary: nothing torn.
        std::fs::write(dir.path().join(WAL_FILE), &bytes[..whole as usize]).unwrap();
        assert_eq!(
            read_all(dir.path()),
            (
                vec![a],
                Replayed {
                    batches: 1,
                    samples: 2,
                    torn: None
                }
            )
        );
    }

    #[test]
    fn an_append_after_a_failed_one_cuts_off_its_part_and_is_read_on() {
        let dir = tempfile::tempdir().unwrap();
        let a = samples("host-a", vec![1], vec![1.0]);
        let b = samples("host-b", vec![2], vec![2.0]);
        let c = samples("host-c", vec![3], vec![3.0]);
        let mut wal = Wal::new(dir.path());
        wal.append(&a).unwrap();
        wal.append(&b).unwrap();
        // A failed append: part of a message written, the writer closed.
        let whole = std::fs::metadata(wal.path()).unwrap().len();
        let mut bytes = std::fs::read(wal.path()).unwrap();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x40, 0, 0, 0, 1, 2, 3]);
        std::fs::write(wal.path(), &bytes).unwrap();
        wal.writer = None;
        // The next append starts a second stream where `b` ended.
        wal.append(&c).unwrap();
        let mut cut = bytes;
        cut.truncate(whole as usize);
        assert_eq!(
            std::fs::read(wal.path()).unwrap()[..whole as usize],
            cut[..]
        );
        let (got, r) = read_all(dir.path());
        assert_eq!(got, [a, b, c]);
        assert_eq!(r.torn, None);
    }

    #[test]
    fn the_first_append_makes_a_missing_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("not-yet").join("data");
        let a = samples("host-a", vec![1], vec![1.0]);
        let mut wal = Wal::new(&data);
        wal.append(&a).unwrap();
        let (got, r) = read_all(&data);
        assert_eq!(got, [a]);
        assert_eq!(r.torn, None);
    }

    #[test]
    fn an_append_is_fsynced_once_the_delay_has_passed_since_the_last_fsync() {
        const S: i64 = 1_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(dir.path());
        // Nothing appended, nothing to sync.
        assert!(!wal.sync_if_due(10 * S, S).unwrap());
        wal.append(&samples("h", vec![1], vec![1.0])).unwrap();
        // The first append is synced at once (with the new directory entry).
        assert!(wal.sync_if_due(10 * S, S).unwrap());
        assert!(!wal.sync_if_due(10 * S, S).unwrap(), "already synced");
        wal.append(&samples("h", vec![2], vec![2.0])).unwrap();
        assert!(!wal.sync_if_due(11 * S - 1, S).unwrap(), "before the delay");
        assert!(wal.sync_if_due(11 * S, S).unwrap());
        // A clock set back makes it due.
        wal.append(&samples("h", vec![2], vec![2.5])).unwrap();
        assert!(wal.sync_if_due(5 * S, S).unwrap());
        // A delay of 0 syncs every append.
        for t in [11, 11, 12] {
            wal.append(&samples("h", vec![t], vec![3.0])).unwrap();
            assert!(wal.sync_if_due(t * S, 0).unwrap());
        }
        assert_eq!(wal.syncs(), 6);
        // A reset leaves nothing to sync; a new log is synced again.
        wal.reset().unwrap();
        assert!(!wal.sync_if_due(20 * S, 0).unwrap());
        wal.append(&samples("h", vec![4], vec![4.0])).unwrap();
        assert!(wal.sync_if_due(20 * S, 0).unwrap());
        assert_eq!(wal.syncs(), 7);
        assert_eq!(read_all(dir.path()).1.samples, 1);
    }
}
