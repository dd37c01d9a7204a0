//! `SOURCE_DATE_EPOCH` for image configs: timestamps later than the epoch are clamped to it,
//! as BuildKit's exporter does for `created` and the history entries. (File mtimes inside
//! layers are clamped by [`crate::LayerOptions::source_date_epoch`].)

use crate::ExportError;
use registry::ImageConfig;
use registry::time::{format_rfc3339, parse_rfc3339};

/// Clamps `config.created` and every history entry's `created` to `epoch` (seconds since
/// 1970-01-01T00:00:00Z) when they are later. Missing timestamps stay missing.
pub fn apply_source_date_epoch(config: &mut ImageConfig, epoch: i64) -> Result<(), ExportError> {
    let fixed = format_rfc3339(epoch);
    let clamp = |t: &mut Option<String>| -> Result<(), ExportError> {
        if let Some(s) = t {
            let (secs, nanos) = parse_rfc3339(s)
                .ok_or_else(|| ExportError::invalid(format!("timestamp {s:?} is not RFC 3339")))?;
            if secs > epoch || (secs == epoch && nanos > 0) {
                *t = Some(fixed.clone());
            }
        }
        Ok(())
    };
    clamp(&mut config.created)?;
    for h in &mut config.history {
        clamp(&mut h.created)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::History;

    #[test]
    fn parse_and_format_table() {
        let cases: [(&str, Option<(i64, u32)>); 8] = [
            ("1970-01-01T00:00:00Z", Some((0, 0))),
            ("2024-01-01T00:00:00Z", Some((1_704_067_200, 0))),
            ("2024-02-29T12:30:45.5Z", Some((1_709_209_845, 500_000_000))),
            ("2024-01-01T02:00:00+02:00", Some((1_704_067_200, 0))),
            ("1969-12-31T23:59:59Z", Some((-1, 0))),
            ("2024-13-01T00:00:00Z", None),
            ("2024-01-01", None),
            ("2024-01-01T00:00:00", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339(text), want, "{text}");
        }
        for secs in [0, 1_704_067_200, 1_709_209_845, -1, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Some((secs, 0)));
        }
    }

    #[test]
    fn clamps_only_later_times() {
        let mut c = ImageConfig {
            created: Some("2030-01-01T00:00:00Z".into()),
            history: vec![
                History { created: Some("2000-01-01T00:00:00Z".into()), ..Default::default() },
                History { created: Some("2024-01-01T00:00:00.1Z".into()), ..Default::default() },
                History { created: None, ..Default::default() },
            ],
            ..Default::default()
        };
        apply_source_date_epoch(&mut c, 1_704_067_200).unwrap();
        assert_eq!(c.created.as_deref(), Some("2024-01-01T00:00:00Z"));
        let got: Vec<_> = c.history.iter().map(|h| h.created.as_deref()).collect();
        assert_eq!(got, [Some("2000-01-01T00:00:00Z"), Some("2024-01-01T00:00:00Z"), None]);
        c.created = Some("yesterday".into());
        assert!(apply_source_date_epoch(&mut c, 0).is_err());
    }
}
