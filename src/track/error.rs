//! What an HTTP answer (or the lack of one) means for the rows it carried.

use std::time::{Duration, SystemTime};

/// The meaning of one attempt's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: acknowledged; the body may still list per-operation errors (207).
    Accepted {
        /// The HTTP status.
        status: u16,
        /// For a batch: the operations the API refused (index -> message), read from a 207.
        errors: std::collections::BTreeMap<usize, String>,
    },
    /// A 4xx that will not change on retry: the API refused the content.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The API's message.
        message: String,
    },
    /// 401/403: the credentials or region are wrong; nothing more will work.
    Fatal {
        /// The HTTP status.
        status: u16,
        /// What to do.
        message: String,
    },
    /// No connection could be made at all (refused, no route, name not found): worth another
    /// try, but a run where nothing connects should stop rather than wait out every row.
    Unreachable {
        /// What happened.
        message: String,
    },
    /// 408, 429, 5xx, a timeout or a connection error: worth another try.
    Retry {
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        /// The server's `Retry-After`, when given.
        retry_after: Option<Duration>,
        /// What happened.
        message: String,
    },
}

/// The longest `Retry-After` honoured as given; longer ones are cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Classifies an HTTP answer. For a batch of `batch_ops` operations, a 2xx is read for the
/// operations it refused; one whose errors cannot be read ([`super::batch::read_errors`]) is
/// an unknown outcome, retried like a 5xx (identify is idempotent) rather than guessed at.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    batch_ops: Option<usize>,
) -> Answer {
    match status {
        200..=299 => match batch_ops.map(|ops| super::batch::read_errors(status, body, ops)) {
            None => Answer::Accepted {
                status,
                errors: Default::default(),
            },
            Some(Ok(errors)) => Answer::Accepted { status, errors },
            Some(Err(why)) => Answer::Retry {
                status: Some(status),
                retry_after: None,
                message: format!(
                    "the API answered {status} but {why}: which operations it refused is unknown"
                ),
            },
        },
        401 | 403 => Answer::Fatal {
            status,
            message: format!(
                "the Track API answered {status} ({}): check CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY \
(a Track API key, not an App API key) and --region (us or eu)",
                api_message(body)
            ),
        },
        408 | 429 | 500..=599 => Answer::Retry {
            status: Some(status),
            retry_after: retry_after.and_then(parse_retry_after),
            message: format!("HTTP {status}: {}", api_message(body)),
        },
        _ => Answer::Refused {
            status,
            message: api_message(body),
        },
    }
}

/// Reads `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = v.parse::<f64>() {
        Duration::try_from_secs_f64(secs).ok()?
    } else {
        let when = httpdate::parse_http_date(v).ok()?;
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// The human message in an error body: v1 `{"meta":{"error"}}` or `{"meta":{"errors":[..]}}`,
/// v2 `{"errors":[{reason,field,message}]}`, or the text itself.
pub fn api_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let mut parts = Vec::new();
        if let Some(meta) = v.get("meta") {
            if let Some(e) = meta.get("error").and_then(|e| e.as_str()) {
                parts.push(e.to_string());
            }
            if let Some(list) = meta.get("errors").and_then(|e| e.as_array()) {
                parts.extend(list.iter().map(value_text));
            }
        }
        if let Some(list) = v.get("errors").and_then(|e| e.as_array()) {
            parts.extend(list.iter().map(v2_error_text));
        }
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(no message)".to_string()
    } else {
        text.chars().take(300).collect()
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One v2 error entry as text: `reason: message (field x)`.
pub fn v2_error_text(e: &serde_json::Value) -> String {
    let get = |k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or("");
    let (reason, field, message) = (get("reason"), get("field"), get("message"));
    let mut s = String::new();
    if !reason.is_empty() {
        s.push_str(reason);
    }
    if !message.is_empty() {
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(message);
    }
    if !field.is_empty() {
        s.push_str(&format!(" (field '{field}')"));
    }
    if s.is_empty() {
        value_text(e)
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_v1_forms_and_the_v2_form_are_read() {
        assert_eq!(
            api_message(br#"{"meta":{"error":"id attribute must be present"}}"#),
            "id attribute must be present"
        );
        assert_eq!(api_message(br#"{"meta":{"errors":["a","b"]}}"#), "a; b");
        assert_eq!(
            api_message(
                br#"{"errors":[{"reason":"invalid","field":"attributes","message":"too long"}]}"#
            ),
            "invalid: too long (field 'attributes')"
        );
        assert_eq!(api_message(b"Bad Gateway"), "Bad Gateway");
    }

    #[test]
    fn statuses_map_to_what_to_do() {
        assert!(matches!(
            classify(200, None, &[], None),
            Answer::Accepted { .. }
        ));
        assert!(matches!(
            classify(401, None, &[], None),
            Answer::Fatal { .. }
        ));
        assert!(matches!(
            classify(403, None, &[], None),
            Answer::Fatal { .. }
        ));
        assert!(matches!(
            classify(400, None, &[], None),
            Answer::Refused { .. }
        ));
        assert!(matches!(
            classify(413, None, &[], None),
            Answer::Refused { .. }
        ));
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(s, None, &[], None), Answer::Retry { .. }),
                "{s}"
            );
        }
        match classify(429, Some("7"), &[], None) {
            Answer::Retry { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
