//! A transformer that misbehaves on purpose, to prove the sandbox holds.
//!
//! Setting `behaviour` picks the misdeed; `in_init = true` commits it in
//! `init` instead of `transform`; `every = N` commits it only on every Nth
//! call of an instance (the others return the input):
//!
//! | behaviour            | what it does                                     |
//! |----------------------|--------------------------------------------------|
//! | `identity`           | returns its input (the well-behaved control)     |
//! | `loop`               | loops forever                                    |
//! | `memory-bomb`        | allocates 1 MiB blocks until refused             |
//! | `panic`              | panics                                           |
//! | `mismatched-columns` | returns more values than timestamps              |
//! | `index-out-of-range` | refers to a series that does not exist           |
//! | `huge-output`        | returns 100 million samples                      |
//! | `read-passwd`        | reads `/etc/passwd` and returns its length       |
//! | `open-socket`        | connects to 127.0.0.1:1                          |
//! | `hoard`              | keeps 8 MiB more per call, returns its input     |
//! | `http-get`           | GETs `http://{authority}/` with `wasi:http`; returns the status |

use wasmeter_guest::{Batch, BatchBuilder, Error, SampleType, Settings, Transformer};

std::thread_local! {
    /// What `hoard` keeps between calls.
    static HOARD: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The configured misdeed.
pub struct Hostile {
    behaviour: String,
    /// `host:port` for `http-get`.
    authority: String,
    every: u64,
    calls: u64,
}

fn misbehave(behaviour: &str, authority: &str, input: Batch) -> Result<Batch, Error> {
    match behaviour {
        "http-get" => {
            let status = http_get(authority)?;
            let mut b = BatchBuilder::new();
            let s = b.series("http.status", authority, "1", SampleType::Gauge, &[]);
            b.push(s, 0, f64::from(status));
            Ok(b.finish())
        }
        "identity" => Ok(input),
        "loop" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "memory-bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = vec![0u8; 1 << 20];
                block[0] = 1;
                hoard.push(std::hint::black_box(block));
            }
        }
        "panic" => panic!("hostile plugin panics on purpose"),
        "mismatched-columns" => {
            let mut b = input;
            b.values.push(1.0);
            Ok(b)
        }
        "index-out-of-range" => {
            let mut b = input;
            let n = b.series.len() as u32;
            b.series_index.iter_mut().for_each(|i| *i = n + 7);
            Ok(b)
        }
        "huge-output" => {
            let n = 100_000_000usize;
            let mut b = BatchBuilder::with_capacity(0);
            let s = b.series("huge", "r", "1", SampleType::Gauge, &[]);
            let mut out = b.finish();
            out.series_index = vec![s; n];
            out.timestamps = vec![0; n];
            out.values = vec![0.0; n];
            Ok(out)
        }
        "read-passwd" => {
            let text = std::fs::read_to_string("/etc/passwd")
                .map_err(|e| Error::unavailable(format!("cannot read /etc/passwd: {e}")))?;
            let mut b = BatchBuilder::new();
            let s = b.series("stolen.bytes", "passwd", "B", SampleType::Gauge, &[]);
            b.push(s, 0, text.len() as f64);
            Ok(b.finish())
        }
        "hoard" => {
            HOARD.with(|h| {
                h.borrow_mut()
                    .push(std::hint::black_box(vec![1u8; 8 << 20]))
            });
            Ok(input)
        }
        "open-socket" => {
            std::net::TcpStream::connect("127.0.0.1:1")
                .map_err(|e| Error::unavailable(format!("cannot connect: {e}")))?;
            Ok(input)
        }
        other => Err(Error::invalid_settings(format!(
            "setting `behaviour`: unknown {other:?}"
        ))),
    }
}

/// One GET through `wasi:http`; the response status.
#[cfg(target_arch = "wasm32")]
fn http_get(authority: &str) -> Result<u16, Error> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    let request = OutgoingRequest::new(Fields::new());
    let set = request
        .set_scheme(Some(&Scheme::Http))
        .and(request.set_authority(Some(authority)))
        .and(request.set_path_with_query(Some("/")));
    set.map_err(|()| Error::invalid_settings(format!("bad authority {authority:?}")))?;
    let response = outgoing_handler::handle(request, None)
        .map_err(|e| Error::unavailable(format!("http: {e}")))?;
    response.subscribe().block();
    let response = response
        .get()
        .ok_or_else(|| Error::internal("http: no response"))?
        .map_err(|()| Error::internal("http: response taken twice"))?
        .map_err(|e| Error::unavailable(format!("http: {e}")))?;
    Ok(response.status())
}

#[cfg(not(target_arch = "wasm32"))]
fn http_get(_authority: &str) -> Result<u16, Error> {
    Err(Error::unavailable("http: only inside a Wasm host"))
}

impl Transformer for Hostile {
    fn init(settings: Settings) -> Result<Self, Error> {
        let behaviour = settings.get("behaviour").unwrap_or("identity").to_owned();
        let authority = settings.get("authority").unwrap_or("").to_owned();
        if settings.bool_or("in_init", false)? {
            misbehave(&behaviour, &authority, Batch::empty())?;
        }
        let every = settings.u64_or("every", 1)?.max(1);
        Ok(Hostile {
            behaviour,
            authority,
            every,
            calls: 0,
        })
    }

    fn transform(&mut self, input: Batch) -> Result<Batch, Error> {
        self.calls += 1;
        if self.calls.is_multiple_of(self.every) {
            misbehave(&self.behaviour, &self.authority, input)
        } else {
            Ok(input)
        }
    }
}

wasmeter_guest::export_transformer!(Hostile);
