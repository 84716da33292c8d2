//! `GET /metrics`: Prometheus text exposition of the API's requests and
//! every attachment's S3 traffic, memory and uploads in flight.
//!
//! Served without an API key only when the server listens on loopback
//! (scraped from the same host); otherwise any tenant's key is required,
//! because the labels name sandboxes and mount paths.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::mount::{MountManager, MountMetrics, MountStatus};

/// Upper bounds (seconds) of the API latency histogram.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What the server counts about its own requests.
#[derive(Default)]
pub(crate) struct ApiMetrics {
    /// `(route, method, status) -> requests`
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    /// `(route, method) -> latency`
    latency: Mutex<BTreeMap<(&'static str, String), Histogram>>,
}

impl ApiMetrics {
    /// Counts one answered request. `route` is a template of
    /// [`super::ROUTES`] (or `other`), so labels stay bounded.
    pub fn record(&self, route: &'static str, method: &str, status: u16, took: Duration) {
        let method = method.to_string();
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route, method.clone(), status))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = latency.entry((route, method)).or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The exposition text.
pub(crate) fn render(api: &ApiMetrics, mounts: &MountManager) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "byos3_api_requests_total",
        "counter",
        "API requests answered, by route, method and status.",
    );
    for ((route, method, status), n) in api.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            out,
            "byos3_api_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
            esc(route)
        );
    }
    header(
        &mut out,
        "byos3_api_request_duration_seconds",
        "histogram",
        "API request latency, by route and method.",
    );
    for ((route, method), h) in api.latency.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let labels = format!("route=\"{}\",method=\"{method}\"", esc(route));
        for (le, n) in BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(
                out,
                "byos3_api_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "byos3_api_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "byos3_api_request_duration_seconds_sum{{{labels}}} {}", h.sum);
        let _ = writeln!(out, "byos3_api_request_duration_seconds_count{{{labels}}} {}", h.count);
    }

    let attachments = mounts.metrics();
    let label = |m: &MountMetrics| {
        format!(
            "sandbox=\"{}\",disk=\"{}\",mount_path=\"{}\"",
            esc(&m.request.sandbox_id),
            esc(&m.request.disk_id),
            esc(m.request.mount_path.as_str())
        )
    };
    type Series = (&'static str, &'static str, &'static str, fn(&MountMetrics) -> u64);
    let gauges: [Series; 10] = [
        (
            "byos3_attachment_up",
            "gauge",
            "1 while the attachment is mounted and healthy, else 0.",
            |m| u64::from(m.status == MountStatus::Mounted),
        ),
        (
            "byos3_attachment_read_bytes_total",
            "counter",
            "Bytes read through the mount by the sandbox.",
            |m| m.bytes_read,
        ),
        (
            "byos3_attachment_written_bytes_total",
            "counter",
            "Bytes written through the mount by the sandbox.",
            |m| m.bytes_written,
        ),
        (
            "byos3_attachment_s3_bytes_received_total",
            "counter",
            "Bytes read from the bucket (object data and listings).",
            |m| m.s3.bytes_received,
        ),
        (
            "byos3_attachment_s3_bytes_sent_total",
            "counter",
            "Bytes written to the bucket (request bodies).",
            |m| m.s3.bytes_sent,
        ),
        (
            "byos3_attachment_s3_retries_total",
            "counter",
            "S3 request attempts that were retried.",
            |m| m.s3.retries,
        ),
        (
            "byos3_attachment_uploads_in_flight",
            "gauge",
            "Multipart uploads started and not yet completed or aborted.",
            |m| m.uploads_in_flight,
        ),
        (
            "byos3_attachment_prefetch_memory_bytes",
            "gauge",
            "Read-ahead buffer memory held.",
            |m| m.prefetch_memory_in_use,
        ),
        (
            "byos3_attachment_staged_bytes",
            "gauge",
            "Changed file data staged on local disk.",
            |m| m.staged_bytes,
        ),
        (
            "byos3_attachment_inodes",
            "gauge",
            "Inodes the mount keeps (names the kernel holds, open files).",
            |m| m.inodes,
        ),
    ];
    for (name, kind, help, value) in gauges {
        header(&mut out, name, kind, help);
        for m in &attachments {
            let _ = writeln!(out, "{name}{{{}}} {}", label(m), value(m));
        }
    }
    header(
        &mut out,
        "byos3_attachment_s3_requests_total",
        "counter",
        "S3 request attempts, by operation and outcome (2xx, 404, 4xx, 5xx, network).",
    );
    for m in &attachments {
        for (op, outcome, n) in &m.s3.by_outcome {
            let _ = writeln!(
                out,
                "byos3_attachment_s3_requests_total{{{},operation=\"{}\",outcome=\"{}\"}} {n}",
                label(m),
                op.name(),
                outcome.name()
            );
        }
    }
    header(
        &mut out,
        "byos3_attachment_s3_errors_total",
        "counter",
        "S3 request attempts that failed, by operation.",
    );
    for m in &attachments {
        for (op, _, errors) in m.s3.by_operation.iter().filter(|(_, _, e)| *e > 0) {
            let _ = writeln!(
                out,
                "byos3_attachment_s3_errors_total{{{},operation=\"{}\"}} {errors}",
                label(m),
                op.name()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_escaped() {
        let api = ApiMetrics::default();
        api.record("/v1/disks", "GET", 200, Duration::from_millis(3));
        api.record("/v1/disks", "GET", 200, Duration::from_millis(300));
        api.record("/v1/disks", "GET", 404, Duration::from_secs(20));
        let mounts = MountManager::new(
            std::sync::Arc::new(crate::mount::DirectoryResolver::new("/nonexistent")),
            crate::fs::MountOptions::default(),
        );
        let text = render(&api, &mounts);
        assert!(text.contains("byos3_api_requests_total{route=\"/v1/disks\",method=\"GET\",status=\"200\"} 2"));
        assert!(text
            .contains("byos3_api_request_duration_seconds_bucket{route=\"/v1/disks\",method=\"GET\",le=\"0.005\"} 1"));
        assert!(
            text.contains("byos3_api_request_duration_seconds_bucket{route=\"/v1/disks\",method=\"GET\",le=\"0.5\"} 2")
        );
        assert!(text
            .contains("byos3_api_request_duration_seconds_bucket{route=\"/v1/disks\",method=\"GET\",le=\"+Inf\"} 3"));
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
