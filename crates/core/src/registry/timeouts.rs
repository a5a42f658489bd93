//! How long registry I/O may take before it is given up, so that a registry that drips, stalls
//! or falls silent fails a push or a pull in bounded time, while a large blob on a slow but
//! steady link is not cut off:
//!
//! - a request without a large body (a manifest, a token, `HEAD`, `POST`) has a deadline of
//!   [`Timeouts::timeout`], from connecting to the last byte of the answer;
//! - a blob, whose size is the registry's to say, has none: it fails when nothing moves for
//!   that long (its socket's timeout), or when less than [`Timeouts::min_rate`] bytes a second
//!   moved over a span of that long ([`Paced`]).
//!
//! `stowage push` and `copy` take them as `--timeout` and `--min-rate`; they, the copy scripts
//! and `pullImage`'s builder take them from the environment ([`TIMEOUT_VAR`],
//! [`MIN_RATE_VAR`]).

use crate::{Error, Result};
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// The deadline of a request, and how long a blob may stall, unless told otherwise: ample for
/// a registry's answers and a token service's, which take well under a second.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The slowest a blob may move, in bytes a second, unless told otherwise: far below any link a
/// push or pull is run over, far above a drip.
pub const DEFAULT_MIN_RATE: u64 = 1024;

/// The variable that sets [`Timeouts::timeout`], in seconds.
pub const TIMEOUT_VAR: &str = "STOWAGE_REGISTRY_TIMEOUT";

/// The variable that sets [`Timeouts::min_rate`], in bytes a second.
pub const MIN_RATE_VAR: &str = "STOWAGE_REGISTRY_MIN_RATE";

/// How long registry I/O may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The deadline of a request without a large body; how long a blob may stall; the span
    /// its rate is judged over.
    pub timeout: Duration,
    /// The lowest rate, in bytes a second, a blob may move at over a span of `timeout`; 0 for
    /// none.
    pub min_rate: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { timeout: DEFAULT_TIMEOUT, min_rate: DEFAULT_MIN_RATE }
    }
}

impl Timeouts {
    /// The timeouts given (`timeout` in seconds, `min_rate` in bytes a second, as the command
    /// line takes them), else the environment's, else the defaults.
    pub fn new(timeout: Option<u64>, min_rate: Option<u64>) -> Result<Timeouts> {
        let timeout = match timeout {
            Some(0) => return Err(Error::argument("--timeout", "must be at least 1 (second)")),
            Some(seconds) => Duration::from_secs(seconds),
            None => from_env(TIMEOUT_VAR, "a whole number of seconds, at least 1", |seconds| seconds > 0)?
                .map_or(DEFAULT_TIMEOUT, Duration::from_secs),
        };
        let min_rate = match min_rate {
            Some(rate) => rate,
            None => from_env(MIN_RATE_VAR, "a whole number of bytes a second (0 for no minimum)", |_| true)?
                .unwrap_or(DEFAULT_MIN_RATE),
        };
        Ok(Timeouts { timeout, min_rate })
    }

    /// `reader`, a blob's body, held to these timeouts.
    pub fn pace<R: Read>(&self, reader: R) -> Paced<R> {
        Paced { inner: reader, timeouts: *self, since: Instant::now(), moved: 0 }
    }

    /// What went wrong, if `error` (an HTTP client's, or a [`Paced`] body's) is that time ran
    /// out.
    pub fn ran_out(&self, error: &(dyn std::error::Error + 'static)) -> Option<String> {
        let mut cause = Some(error);
        while let Some(error) = cause {
            if let Some(io) = error.downcast_ref::<io::Error>() {
                if let Some(slow) = io.get_ref().and_then(|inner| inner.downcast_ref::<Slow>()) {
                    return Some(slow.to_string());
                }
                // A socket's timeout: ureq says TimedOut, the system WouldBlock.
                if matches!(io.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
                    return Some(format!(
                        "timed out after {} s ({})",
                        self.timeout.as_secs(),
                        timeout_hint()
                    ));
                }
            }
            cause = error.source();
        }
        None
    }
}

/// Where the timeout is set, for messages.
fn timeout_hint() -> String {
    format!("--timeout or {TIMEOUT_VAR} sets how long")
}

/// The whole number in the variable `var`, if it is set; it must be `valid`, which `what` says.
fn from_env(var: &'static str, what: &str, valid: impl Fn(u64) -> bool) -> Result<Option<u64>> {
    // Empty is unset: Nix passes a fixed-output build an impure variable that its caller has
    // not set as empty.
    let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) else { return Ok(None) };
    value
        .to_str()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| valid(*n))
        .map(Some)
        .ok_or_else(|| Error::Environment { var, problem: format!("is {value:?}; it must be {what}") })
}

/// Why a blob's transfer was given up.
#[derive(Debug)]
enum Slow {
    /// Nothing arrived for the timeout.
    Stalled(Duration),
    /// Less than the minimum rate moved over `span`.
    BelowMinRate { moved: u64, span: Duration, min_rate: u64 },
}

impl std::fmt::Display for Slow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slow::Stalled(timeout) => write!(f, "nothing arrived for {} s ({})", timeout.as_secs(), timeout_hint()),
            Slow::BelowMinRate { moved, span, min_rate } => write!(
                f,
                "{moved} bytes moved in {:.1} s, under the minimum of {min_rate} bytes/s (--min-rate or {MIN_RATE_VAR} sets it)",
                span.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for Slow {}

/// A blob's body, read from the registry or sent to it, that fails when less than the
/// minimum rate moved over a span of the timeout, and names a stall (its socket's timeout
/// ending a read) for what it is.
pub struct Paced<R> {
    inner: R,
    timeouts: Timeouts,
    /// Where the current span started…
    since: Instant,
    /// …and the bytes moved in it.
    moved: u64,
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                io::Error::new(io::ErrorKind::TimedOut, Slow::Stalled(self.timeouts.timeout))
            }
            _ => e,
        })?;
        self.moved += n as u64;
        let span = self.since.elapsed();
        if span >= self.timeouts.timeout {
            let least = self.timeouts.min_rate.saturating_mul(span.as_millis() as u64) / 1000;
            if self.moved < least {
                let slow = Slow::BelowMinRate { moved: self.moved, span, min_rate: self.timeouts.min_rate };
                return Err(io::Error::new(io::ErrorKind::TimedOut, slow));
            }
            (self.since, self.moved) = (Instant::now(), 0);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader of one byte a call, each after `delay`.
    struct Drip(Duration);

    impl Read for Drip {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.0);
            buf[0] = b'x';
            Ok(1)
        }
    }

    fn quick(min_rate: u64) -> Timeouts {
        Timeouts { timeout: Duration::from_millis(100), min_rate }
    }

    #[test]
    fn a_drip_is_too_slow_and_a_steady_reader_is_not() {
        let mut buf = [0; 16];
        // 100 bytes a second at most, where 1000 are the minimum
        let mut dripping = quick(1000).pace(Drip(Duration::from_millis(10)));
        let error = std::iter::repeat_with(|| dripping.read(&mut buf)).find_map(|r| r.err()).unwrap();
        let said = quick(1000).ran_out(&error).unwrap();
        assert!(said.contains("bytes moved in 0."), "{said}");
        assert!(said.contains("s, under the minimum of 1000 bytes/s (--min-rate"), "{said}");
        // up to 1000 bytes a second over three spans, where 100 are the minimum (or none)
        for min_rate in [100, 0] {
            let mut steady = quick(min_rate).pace(Drip(Duration::from_millis(1)));
            assert!((0..300).all(|_| steady.read(&mut buf).is_ok()));
        }
    }

    #[test]
    fn a_socket_timeout_is_a_stall() {
        struct Stalled;
        impl Read for Stalled {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::WouldBlock, "Resource temporarily unavailable"))
            }
        }
        let timeouts = Timeouts { timeout: Duration::from_secs(7), min_rate: 1 };
        let error = timeouts.pace(Stalled).read(&mut [0; 4]).unwrap_err();
        assert_eq!(
            timeouts.ran_out(&error).unwrap(),
            "nothing arrived for 7 s (--timeout or STOWAGE_REGISTRY_TIMEOUT sets how long)"
        );
        let deadline = io::Error::new(io::ErrorKind::TimedOut, "timed out reading response");
        assert_eq!(
            timeouts.ran_out(&deadline).unwrap(),
            "timed out after 7 s (--timeout or STOWAGE_REGISTRY_TIMEOUT sets how long)"
        );
        assert_eq!(timeouts.ran_out(&io::Error::other("reset")), None);
    }

    #[test]
    fn settings() {
        assert_eq!(
            Timeouts::new(Some(3), Some(0)).unwrap(),
            Timeouts { timeout: Duration::from_secs(3), min_rate: 0 }
        );
        assert!(Timeouts::new(Some(0), None).unwrap_err().to_string().starts_with("argument '--timeout'"));
    }
}
