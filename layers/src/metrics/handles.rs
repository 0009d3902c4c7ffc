//! The cached metric handles of the `metrics` layer, one pair per command type and result
//! class, resolved on first use.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::metrics::{Counter, Histogram, counter, histogram};
use tokio::time::Instant;

use crate::classify::ResponseClass;
use crate::error::{Error, ErrorKind};
use crate::request::{CmdType, RpcResponse};

use super::names::{CMD_SECONDS, CMD_TOTAL, labels};

/// Result classes before the error kinds: ok, region error, key error, canceled.
const FIXED_RESULTS: usize = 4;
/// Every result class: the fixed ones and one per [`ErrorKind`].
const RESULTS: usize = FIXED_RESULTS + labels::ERROR_KINDS.len();

/// How a logical request ended, as the layer labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A response without region or key error.
    Ok,
    /// A response carrying a region error.
    RegionError,
    /// A response carrying a key error.
    KeyError,
    /// The future was dropped before it finished.
    Canceled,
    /// An error of this kind.
    Error(ErrorKind),
}

impl Outcome {
    /// Classifies a finished request ([`ResponseClass`] for responses, [`Error::kind`] for
    /// errors).
    pub(crate) fn of(res: &Result<RpcResponse, Error>) -> Outcome {
        match res {
            Ok(resp) => match ResponseClass::of(resp) {
                ResponseClass::Ok => Outcome::Ok,
                ResponseClass::RegionError(_) => Outcome::RegionError,
                ResponseClass::KeyError => Outcome::KeyError,
            },
            Err(e) => Outcome::Error(e.kind()),
        }
    }

    /// The `result` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => labels::OK,
            Outcome::RegionError => labels::REGION_ERROR,
            Outcome::KeyError => labels::KEY_ERROR,
            Outcome::Canceled => labels::CANCELED,
            Outcome::Error(kind) => labels::error_result(kind),
        }
    }

    /// The slot of this outcome in a row of the cache.
    fn index(self) -> Option<usize> {
        match self {
            Outcome::Ok => Some(0),
            Outcome::RegionError => Some(1),
            Outcome::KeyError => Some(2),
            Outcome::Canceled => Some(3),
            Outcome::Error(kind) => labels::ERROR_KINDS
                .iter()
                .position(|k| *k == kind)
                .map(|i| FIXED_RESULTS + i),
        }
    }
}

/// The two handles of one `(type, result)` label set.
struct Cell {
    total: Counter,
    seconds: Histogram,
}

impl Cell {
    fn resolve(cmd: CmdType, outcome: Outcome) -> Cell {
        let (t, r) = (cmd.name(), outcome.label());
        Cell {
            total: counter!(CMD_TOTAL, labels::TYPE => t, labels::RESULT => r),
            seconds: histogram!(CMD_SECONDS, labels::TYPE => t, labels::RESULT => r),
        }
    }

    fn record(&self, elapsed: Duration) {
        self.total.increment(1);
        self.seconds.record(elapsed.as_secs_f64());
    }
}

/// The cells of one command type, one per result class.
struct Row {
    cells: [OnceLock<Cell>; RESULTS],
}

/// Every handle the layer has used so far, shared by the layer, its services and their
/// futures. Rows are allocated only for command types that were seen.
pub(crate) struct Handles {
    rows: Box<[OnceLock<Box<Row>>]>,
}

impl Handles {
    pub(crate) fn new() -> Handles {
        Handles {
            rows: CmdType::ALL.iter().map(|_| OnceLock::new()).collect(),
        }
    }

    /// Records one finished request.
    pub(crate) fn record(&self, cmd: CmdType, outcome: Outcome, elapsed: Duration) {
        match self.cell(cmd, outcome) {
            Some(cell) => cell.record(elapsed),
            // Not reachable with the command and error tables as they are; resolving
            // directly keeps the observation should a new variant be missing from them.
            None => Cell::resolve(cmd, outcome).record(elapsed),
        }
    }

    fn cell(&self, cmd: CmdType, outcome: Outcome) -> Option<&Cell> {
        // `CmdType::ALL` is in numeric order, so a binary search finds the row; the linear
        // search is a safety net should that order ever change.
        let row = CmdType::ALL
            .binary_search(&cmd)
            .ok()
            .or_else(|| CmdType::ALL.iter().position(|c| *c == cmd))?;
        let slot = outcome.index()?;
        let row = self.rows.get(row)?.get_or_init(|| {
            Box::new(Row {
                cells: [const { OnceLock::new() }; RESULTS],
            })
        });
        Some(
            row.cells
                .get(slot)?
                .get_or_init(|| Cell::resolve(cmd, outcome)),
        )
    }
}

impl fmt::Debug for Handles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seen = self.rows.iter().filter(|r| r.get().is_some()).count();
        f.debug_struct("Handles")
            .field("command_types_seen", &seen)
            .finish()
    }
}

/// Records one request when it finishes, or as [`Outcome::Canceled`] when dropped first.
pub(crate) struct Recording {
    handles: Arc<Handles>,
    cmd: CmdType,
    start: Instant,
    done: bool,
}

impl Recording {
    /// Starts the clock for a request of type `cmd`.
    pub(crate) fn start(handles: Arc<Handles>, cmd: CmdType) -> Recording {
        Recording {
            handles,
            cmd,
            start: Instant::now(),
            done: false,
        }
    }

    /// Records the outcome; later calls and the drop do nothing.
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        if !self.done {
            self.done = true;
            self.handles.record(self.cmd, outcome, self.start.elapsed());
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.finish(Outcome::Canceled);
    }
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recording")
            .field("cmd", &self.cmd)
            .field("done", &self.done)
            .finish()
    }
}
