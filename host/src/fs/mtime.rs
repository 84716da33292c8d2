//! A file's modification time kept as object metadata.
//!
//! The only time S3 keeps of its own is an object's `Last-Modified`, which
//! the server sets when the object is written. A time a program sets
//! (`touch -d`, `cp -p`, `tar`, `rsync -t`) is kept in the object's
//! `x-amz-meta-mtime`: seconds since the epoch, with a decimal fraction
//! when there is one. s3fs and rclone use the same name and form, so a
//! time set through any of the three is read by the others.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A modification time to set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NewMtime {
    /// The time of the change itself (`touch` without a date): an
    /// object's own `Last-Modified` once it is written, nothing to store.
    Now,
    /// A given time, which the object has to keep in its metadata.
    At(SystemTime),
}

impl NewMtime {
    /// The time to store, if any.
    pub(crate) fn at(self) -> Option<SystemTime> {
        match self {
            NewMtime::Now => None,
            NewMtime::At(t) => Some(t),
        }
    }
}

/// The metadata name (without the `x-amz-meta-` prefix).
pub(crate) const KEY: &str = "mtime";

/// `t` as the metadata value: whole seconds, and nanoseconds only when
/// there are some (whole seconds are what s3fs writes).
pub(crate) fn format(t: SystemTime) -> String {
    let (sign, d) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => ("", d),
        Err(e) => ("-", e.duration()),
    };
    match d.subsec_nanos() {
        0 => format!("{sign}{}", d.as_secs()),
        n => format!("{sign}{}.{n:09}", d.as_secs()),
    }
}

/// The time a metadata value names; `None` for anything else (a value
/// another tool wrote in a form this does not know is ignored, and the
/// object's `Last-Modified` is shown instead).
pub(crate) fn parse(value: &str) -> Option<SystemTime> {
    let v = value.trim();
    let (negative, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    // Digits past nanoseconds are dropped.
    let digits = &frac[..frac.len().min(9)];
    let nanos = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    let d = Duration::new(secs, nanos);
    if negative {
        UNIX_EPOCH.checked_sub(d)
    } else {
        UNIX_EPOCH.checked_add(d)
    }
}

/// The time stored among an object's `x-amz-meta-*` pairs, if any.
pub(crate) fn stored(metadata: &[(String, String)]) -> Option<SystemTime> {
    metadata.iter().find(|(k, _)| k == KEY).and_then(|(_, v)| parse(v))
}

/// `metadata` with its stored time replaced by `t`, or removed for
/// `None`; every other pair kept.
pub(crate) fn with_time(metadata: &[(String, String)], t: Option<SystemTime>) -> Vec<(String, String)> {
    metadata
        .iter()
        .filter(|(k, _)| k != KEY)
        .cloned()
        .chain(t.map(|t| (KEY.to_string(), format(t))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_the_metadata_value() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(981_173_106, 0),
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(86_400, 500_000_000),
        ] {
            assert_eq!(parse(&format(t)), Some(t), "{}", format(t));
        }
        assert_eq!(format(UNIX_EPOCH + Duration::new(981_173_106, 0)), "981173106");
        assert_eq!(format(UNIX_EPOCH + Duration::new(5, 1_000)), "5.000001000");
    }

    #[test]
    fn values_other_tools_write_are_read_and_garbage_is_ignored() {
        // rclone writes a fraction of any length.
        assert_eq!(
            parse("1575984373.5"),
            Some(UNIX_EPOCH + Duration::new(1_575_984_373, 500_000_000))
        );
        assert_eq!(
            parse("1575984373.1234567891234"),
            Some(UNIX_EPOCH + Duration::new(1_575_984_373, 123_456_789))
        );
        assert_eq!(parse(" 42 "), Some(UNIX_EPOCH + Duration::from_secs(42)));
        for bad in [
            "",
            "-",
            ".5",
            "12a",
            "1e9",
            "1.2.3",
            "+5",
            "99999999999999999999999",
            "1.-5",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn replacing_or_removing_the_time_keeps_the_other_metadata() {
        let t = UNIX_EPOCH + Duration::from_secs(7);
        let before = [("mtime".to_string(), "1".to_string()), ("owner".into(), "ci".into())];
        let out = with_time(&before, Some(t));
        assert_eq!(out, vec![("owner".into(), "ci".into()), ("mtime".into(), "7".into())]);
        assert_eq!(stored(&out), Some(t));
        let out = with_time(&before, None);
        assert_eq!(out, vec![("owner".to_string(), "ci".to_string())]);
        assert_eq!(stored(&out), None);
    }
}
