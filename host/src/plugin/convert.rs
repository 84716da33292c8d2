//! Adapters between the contract's types (per snapshot) and the host's.

use super::contract::v0_1::byos3::provider::types as wit;
use super::{DiskConfig, ProbeReport};
use crate::s3::{Addressing, Endpoint, EndpointError, Quirks};

pub(crate) fn disk_config(cfg: &DiskConfig) -> wit::DiskConfig {
    wit::DiskConfig {
        bucket: cfg.bucket.clone(),
        endpoint: cfg.endpoint.clone(),
        region: cfg.region.clone(),
        use_path_style: cfg.use_path_style,
        options: cfg.options.clone(),
    }
}

/// Quirks as data: every flag the plugin does not set keeps the S3 reference behaviour.
pub(crate) fn quirks(list: &[wit::Quirk]) -> Quirks {
    let mut q = Quirks {
        checksum_headers: true,
        ..Quirks::default()
    };
    for quirk in list {
        match *quirk {
            wit::Quirk::NoChecksumHeaders => q.checksum_headers = false,
            wit::Quirk::UniformPartSize => q.uniform_part_size = true,
            wit::Quirk::ListObjectsV1Only => q.list_objects_v1_only = true,
            wit::Quirk::NoUploadPartCopy => q.upload_part_copy = false,
            wit::Quirk::NoCopyObject => q.copy_object = false,
            wit::Quirk::MaxParts(n) => q.max_parts = n,
            wit::Quirk::MinPartSize(n) => q.min_part_size = n,
        }
    }
    q
}

fn quirk_list(q: &Quirks) -> Vec<wit::Quirk> {
    let d = Quirks::default();
    let mut out = Vec::new();
    if !q.checksum_headers {
        out.push(wit::Quirk::NoChecksumHeaders);
    }
    if q.uniform_part_size {
        out.push(wit::Quirk::UniformPartSize);
    }
    if q.list_objects_v1_only {
        out.push(wit::Quirk::ListObjectsV1Only);
    }
    if !q.upload_part_copy {
        out.push(wit::Quirk::NoUploadPartCopy);
    }
    if !q.copy_object {
        out.push(wit::Quirk::NoCopyObject);
    }
    if q.max_parts != d.max_parts {
        out.push(wit::Quirk::MaxParts(q.max_parts));
    }
    if q.min_part_size != d.min_part_size {
        out.push(wit::Quirk::MinPartSize(q.min_part_size));
    }
    out
}

pub(crate) fn endpoint(ep: &wit::Endpoint) -> Result<Endpoint, EndpointError> {
    let addressing = match ep.addressing {
        wit::Addressing::Path => Addressing::Path,
        wit::Addressing::VirtualHosted => Addressing::VirtualHosted,
    };
    Ok(Endpoint::new(&ep.url, &ep.signing_region, addressing)?.with_quirks(quirks(&ep.quirks)))
}

pub(crate) fn wit_endpoint(ep: &Endpoint) -> wit::Endpoint {
    wit::Endpoint {
        url: ep.url(),
        signing_region: ep.signing_region().to_string(),
        addressing: match ep.addressing() {
            Addressing::Path => wit::Addressing::Path,
            Addressing::VirtualHosted => wit::Addressing::VirtualHosted,
        },
        quirks: quirk_list(ep.quirks()),
    }
}

pub(crate) fn probe_code(code: wit::ProbeCode) -> &'static str {
    match code {
        wit::ProbeCode::Ok => "ok",
        wit::ProbeCode::BucketNotFound => "bucket_not_found",
        wit::ProbeCode::AccessDenied => "access_denied",
        wit::ProbeCode::InvalidAccessKey => "invalid_access_key",
        wit::ProbeCode::SignatureMismatch => "signature_mismatch",
        wit::ProbeCode::WrongRegion => "wrong_region",
        wit::ProbeCode::EndpointUnreachable => "endpoint_unreachable",
        wit::ProbeCode::Unsupported => "unsupported",
        wit::ProbeCode::Other => "other",
    }
}

/// Plugin text shown to users is bounded: a plugin can not flood logs or
/// API responses.
pub(crate) fn bounded(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub(crate) fn probe_report(r: wit::ProbeReport) -> ProbeReport {
    ProbeReport {
        ok: r.code == wit::ProbeCode::Ok,
        code: probe_code(r.code).to_string(),
        message: bounded(r.message, 2048),
        hint: r.hint.map(|h| bounded(h, 2048)),
        region: r.region.map(|h| bounded(h, 128)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirks_round_trip() {
        let list = vec![
            wit::Quirk::NoChecksumHeaders,
            wit::Quirk::UniformPartSize,
            wit::Quirk::ListObjectsV1Only,
            wit::Quirk::NoUploadPartCopy,
            wit::Quirk::NoCopyObject,
            wit::Quirk::MaxParts(1000),
            wit::Quirk::MinPartSize(1),
        ];
        let q = quirks(&list);
        assert!(!q.checksum_headers && q.uniform_part_size && q.list_objects_v1_only);
        assert!(!q.upload_part_copy && !q.copy_object);
        assert_eq!((q.max_parts, q.min_part_size), (1000, 1));
        assert_eq!(quirk_list(&q), list);
        let none = quirks(&[]);
        assert!(none.checksum_headers && none.upload_part_copy && none.copy_object);
        assert!(quirk_list(&none).is_empty());
    }

    #[test]
    fn bounded_cuts_on_char_boundary() {
        assert_eq!(bounded("héllo".into(), 2), "h…");
        assert_eq!(bounded("abc".into(), 3), "abc");
    }
}
