//! A backoff reason kept for the budget-exhaustion log (client-go's `backoffErr`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One backoff reason and the wall-clock time it was recorded.
///
/// A [`Backoffer`](super::Backoffer) keeps the last
/// [`MAX_RECORD_BACKOFF_ERR_COUNT`](super::MAX_RECORD_BACKOFF_ERR_COUNT) of them so that,
/// when the budget runs out, the log says what went wrong and when. It renders as
/// `"<reason> at <RFC 3339 time>"`, e.g. `mockErr at 1970-01-01T07:20:34+03:00`; the
/// fraction of a second is printed only when non-zero, without trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "backoffErr")]
pub struct RecordedError {
    reason: String,
    time: SystemTime,
    utc_offset_secs: i32,
}

impl RecordedError {
    /// A record of `reason` at `time`, rendered in UTC.
    pub fn new(reason: impl Into<String>, time: SystemTime) -> RecordedError {
        RecordedError {
            reason: reason.into(),
            time,
            utc_offset_secs: 0,
        }
    }

    /// A record of `reason` at the current wall-clock time.
    pub fn now(reason: impl Into<String>) -> RecordedError {
        RecordedError::new(reason, SystemTime::now())
    }

    /// Renders the time in a fixed zone `offset_secs` east of UTC instead of UTC.
    #[must_use]
    pub fn with_utc_offset(mut self, offset_secs: i32) -> Self {
        self.utc_offset_secs = offset_secs;
        self
    }

    /// The reason's text.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// When the reason was recorded.
    pub fn time(&self) -> SystemTime {
        self.time
    }
}

impl fmt::Display for RecordedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at ", self.reason)?;
        write_rfc3339(f, self.time, self.utc_offset_secs)
    }
}

/// Seconds and nanoseconds since the Unix epoch, negative seconds before it.
fn unix_parts(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d: Duration = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() == 0 {
                (-secs, 0)
            } else {
                (-secs - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    }
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // month is in 1..=12 and day in 1..=31 by construction.
    (year, month as u32, day as u32)
}

/// Writes `time` as RFC 3339 in a fixed offset: `Z` for UTC, `±hh:mm` otherwise.
fn write_rfc3339(f: &mut fmt::Formatter<'_>, time: SystemTime, offset: i32) -> fmt::Result {
    let (secs, nanos) = unix_parts(time);
    let local = secs.saturating_add(i64::from(offset));
    let (year, month, day) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    write!(
        f,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )?;
    if nanos != 0 {
        let mut frac = format!("{nanos:09}");
        while frac.ends_with('0') {
            frac.pop();
        }
        write!(f, ".{frac}")?;
    }
    if offset == 0 {
        f.write_str("Z")
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, nanos: u32) -> SystemTime {
        if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                + Duration::from_nanos(nanos.into())
        }
    }

    #[test]
    fn renders_utc_fractions_and_offsets() {
        assert_eq!(
            RecordedError::new("e", at(0, 0)).to_string(),
            "e at 1970-01-01T00:00:00Z"
        );
        assert_eq!(
            RecordedError::new("e", at(1_709_251_199, 120_000_000)).to_string(),
            "e at 2024-02-29T23:59:59.12Z"
        );
        assert_eq!(
            RecordedError::new("e", at(951_782_400, 1)).to_string(),
            "e at 2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(
            RecordedError::new("e", at(0, 0))
                .with_utc_offset(-(5 * 3600 + 30 * 60))
                .to_string(),
            "e at 1969-12-31T18:30:00-05:30"
        );
        assert_eq!(
            RecordedError::new("e", at(-1, 500_000_000)).to_string(),
            "e at 1969-12-31T23:59:59.5Z"
        );
        let r = RecordedError::now("x");
        assert_eq!(r.reason(), "x");
        assert!(r.time() <= SystemTime::now());
    }
}
