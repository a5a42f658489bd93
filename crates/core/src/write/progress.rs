//! The progress line on stderr while an image is streamed or written: layers done, bytes
//! written of how many.
//!
//! On a terminal it is one line, redrawn in place a few times a second. Elsewhere (a pipe, a
//! file, CI's log) it is quiet unless asked for with `STOWAGE_PROGRESS=always`, and then it is
//! a line every second at most, never a carriage return. Nix's build log is where a derivation
//! builder's progress belongs (`nix build` shows its latest line under the bar), so builders
//! ask for it.

use crate::image::plan::Plan;
use crate::{Error, Result};
use std::cell::Cell;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

/// The variable that asks for progress (`always`), forbids it (`never`), or leaves it to
/// whether stderr is a terminal (`auto`, the default).
pub const PROGRESS_VARIABLE: &str = "STOWAGE_PROGRESS";

/// How often a terminal's line is redrawn, at most.
const REDRAW: Duration = Duration::from_millis(100);
/// How often a line is written where stderr is not a terminal, at most.
const LINE_EVERY: Duration = Duration::from_secs(1);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One line, redrawn in place (stderr is a terminal).
    Live,
    /// A line now and then (asked for, stderr is not a terminal).
    Lines,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// The mode `STOWAGE_PROGRESS` asks for (`auto` if it is unset), given whether stderr is
    /// a terminal.
    pub fn from_env() -> Result<Mode> {
        let asked = std::env::var(PROGRESS_VARIABLE).unwrap_or_default();
        Mode::choose(&asked, io::stderr().is_terminal())
    }

    /// A derivation builder's mode: lines for Nix's log, unless `STOWAGE_PROGRESS` says
    /// otherwise.
    pub fn for_builder() -> Result<Mode> {
        match std::env::var(PROGRESS_VARIABLE) {
            Ok(asked) => Mode::choose(&asked, io::stderr().is_terminal()),
            Err(_) => Ok(Mode::Lines),
        }
    }

    fn choose(asked: &str, terminal: bool) -> Result<Mode> {
        match (asked, terminal) {
            ("" | "auto", true) | ("always", true) => Ok(Mode::Live),
            ("always", false) => Ok(Mode::Lines),
            ("" | "auto", false) | ("never", _) => Ok(Mode::Quiet),
            _ => Err(Error::argument(
                PROGRESS_VARIABLE,
                format!("is {asked:?}; it must be always, never or auto"),
            )),
        }
    }
}

/// The progress of one image file or stream: `layers` layers, `total` bytes in all.
pub struct Progress {
    mode: Mode,
    what: String,
    layers: usize,
    total: u64,
    layers_done: Cell<usize>,
    bytes: Cell<u64>,
    shown: Cell<Option<Instant>>,
}

impl Progress {
    /// The progress of writing `plan`, called `what`.
    pub fn of(plan: &Plan, what: &str, mode: Mode) -> Progress {
        let layers = plan.unique_layers();
        Progress::new(mode, what, layers.len(), layers.iter().map(|l| l.size).sum())
    }

    /// Progress of writing `what` (a name for the line), `layers` layers and `total` bytes.
    pub fn new(mode: Mode, what: impl Into<String>, layers: usize, total: u64) -> Progress {
        Progress {
            mode,
            what: what.into(),
            layers,
            total,
            layers_done: Cell::new(0),
            bytes: Cell::new(0),
            shown: Cell::new(None),
        }
    }

    /// `out`, counting what is written to it into this progress.
    pub fn meter<W: Write>(&self, out: W) -> Metered<'_, W> {
        Metered { inner: out, progress: self }
    }

    /// Notes that one more layer is written.
    pub fn layer_done(&self) {
        self.layers_done.set(self.layers_done.get() + 1);
        self.show(false);
    }

    /// Shows the last state (and ends a terminal's line).
    pub fn finish(&self) {
        self.show(true);
        if self.mode == Mode::Live && self.shown.get().is_some() {
            eprintln!();
        }
    }

    fn show(&self, last: bool) {
        let every = match self.mode {
            Mode::Quiet => return,
            Mode::Live => REDRAW,
            Mode::Lines => LINE_EVERY,
        };
        let now = Instant::now();
        if !last && self.shown.get().is_some_and(|then| now.duration_since(then) < every) {
            return;
        }
        self.shown.set(Some(now));
        let line = self.line();
        let mut err = io::stderr().lock();
        // A progress line that cannot be written is not worth failing the image for.
        let _ = match self.mode {
            // `\x1b[K` clears what a longer line before left.
            Mode::Live => write!(err, "\r{line}\x1b[K"),
            _ => writeln!(err, "{line}"),
        };
    }

    fn line(&self) -> String {
        let (bytes, total) = (self.bytes.get(), self.total.max(1));
        format!(
            "stowage: {}: layer {}/{}, {} of {} ({}%)",
            self.what,
            self.layers_done.get(),
            self.layers,
            mib(bytes),
            mib(self.total),
            (bytes.min(total) * 100) / total
        )
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// A writer that counts its bytes into a [`Progress`].
pub struct Metered<'a, W> {
    inner: W,
    progress: &'a Progress,
}

impl<W> Metered<'_, W> {
    /// The writer inside.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Metered<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let progress = self.progress;
        progress.bytes.set(progress.bytes.get() + n as u64);
        progress.show(false);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(Mode::choose("", true).unwrap(), Mode::Live);
        assert_eq!(Mode::choose("auto", false).unwrap(), Mode::Quiet);
        assert_eq!(Mode::choose("always", false).unwrap(), Mode::Lines);
        assert_eq!(Mode::choose("never", true).unwrap(), Mode::Quiet);
        let e = Mode::choose("yes", false).unwrap_err().to_string();
        assert!(e.contains("STOWAGE_PROGRESS") && e.contains("\"yes\""), "{e}");
    }

    #[test]
    fn counts_bytes_and_layers() {
        let progress = Progress::new(Mode::Quiet, "x.tar", 2, 3 << 20);
        let mut out = progress.meter(Vec::new());
        out.write_all(&[0; 1 << 20]).unwrap();
        progress.layer_done();
        assert_eq!(progress.line(), "stowage: x.tar: layer 1/2, 1.0 MiB of 3.0 MiB (33%)");
        assert_eq!(out.into_inner().len(), 1 << 20);
    }
}
