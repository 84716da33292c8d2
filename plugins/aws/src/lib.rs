//! Amazon S3. The region is required (given, or read from a regional
//! endpoint); the endpoint is the regional `https://s3.<region>.amazonaws.com`
//! (the global `https://s3.amazonaws.com` is accepted and made regional),
//! with dual-stack and FIPS variants by option. Virtual-hosted addressing,
//! path style for bucket names that are not DNS-safe (dots break the TLS
//! wildcard certificate). The probe says which region a bucket is in.

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::probe::{self, HostBucket};
use byos3_plugin_sdk::{
    cfg, config_error, endpoint, option, url, Addressing, ConfigError, DiskConfig, Endpoint, ProbeCode, ProbeReport,
    ProviderInfo, ResolveCase,
};

pub struct Aws;

const OPTIONS: &[&str] = &["dualstack", "fips"];

/// The region and variant flags a regional endpoint host names, if it is one.
fn parse_regional(host: &str) -> Option<(String, bool, bool)> {
    let rest = host
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| host.strip_suffix(".amazonaws.com"))?;
    let (fips, rest) = match rest.strip_prefix("s3-fips.") {
        Some(r) => (true, r),
        None => (false, rest.strip_prefix("s3.").or_else(|| rest.strip_prefix("s3-"))?),
    };
    let (dualstack, region) = match rest.strip_prefix("dualstack.") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    (!region.is_empty() && !region.contains('.')).then(|| (region.to_string(), dualstack, fips))
}

fn regional_url(region: &str, dualstack: bool, fips: bool) -> String {
    let prefix = match (fips, dualstack) {
        (false, false) => "s3",
        (false, true) => "s3.dualstack",
        (true, false) => "s3-fips",
        (true, true) => "s3-fips.dualstack",
    };
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{prefix}.{region}.{domain}")
}

impl byos3_plugin_sdk::Provider for Aws {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "aws".into(),
            name: "Amazon S3".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Amazon S3: region required, regional virtual-hosted endpoints, dual-stack and FIPS by option"
                .into(),
            docs_url: Some("https://docs.aws.amazon.com/general/latest/gr/s3.html".into()),
            default_region: None,
            endpoint_required: false,
            options: vec![
                option(
                    "dualstack",
                    "true: use the dual-stack (IPv4 + IPv6) endpoint s3.dualstack.<region>.amazonaws.com",
                ),
                option("fips", "true: use the FIPS 140 endpoint s3-fips.<region>.amazonaws.com"),
            ],
            examples: table(),
        }
    }

    fn matches(endpoint: &str) -> bool {
        url::Url::parse(endpoint)
            .is_ok_and(|u| u.host.ends_with(".amazonaws.com") || u.host.ends_with(".amazonaws.com.cn"))
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        cfg::check_bucket(&c.bucket)?;
        cfg::only_options(c, OPTIONS)?;
        let (mut dualstack, mut fips) = (cfg::flag(c, "dualstack")?, cfg::flag(c, "fips")?);
        let given = url::endpoint_of(c)?;
        let mut custom = None;
        let mut endpoint_region = None;
        if let Some(u) = &given {
            if !Self::matches(&u.to_url()) {
                return Err(config_error(
                    "endpoint",
                    format!(
                        "{} is not an Amazon S3 endpoint; for another store use its provider, or \"s3\"",
                        u.host
                    ),
                ));
            }
            if u.host == "s3.amazonaws.com" || u.host == "s3-external-1.amazonaws.com" {
                // The global endpoint: made regional below.
            } else if let Some((r, ds, fp)) = parse_regional(&u.host) {
                endpoint_region = Some(r);
                dualstack |= ds;
                fips |= fp;
            } else {
                // VPC endpoints, access points: kept as given.
                custom = Some(u.clone());
            }
        }
        let region = cfg::region_agreeing(c, endpoint_region)?.ok_or_else(|| {
            config_error(
                "region",
                "Amazon S3 needs the bucket's region (e.g. eu-central-1); find it in the S3 console",
            )
        })?;
        let url = match custom {
            Some(u) => u,
            None => url::Url::parse(&regional_url(&region, dualstack, fips)).expect("regional URL is well-formed"),
        };
        let addressing = cfg::addressing(c, &url, false)?;
        Ok(endpoint(url.to_url(), region, addressing, vec![]))
    }

    fn probe(c: &DiskConfig, ep: &Endpoint, prefix: &str) -> ProbeReport {
        let mut r = probe::standard(c, ep, prefix, &mut HostBucket);
        if r.code == ProbeCode::WrongRegion {
            if let Some(region) = &r.region {
                r.hint = Some(format!(
                    "set region to {region:?} (endpoint {})",
                    regional_url(region, false, false)
                ));
            }
        }
        r
    }
}

byos3_plugin_sdk::export_provider!(Aws);

pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "region only",
            config("data").region("eu-central-1"),
            "https://s3.eu-central-1.amazonaws.com",
            "eu-central-1",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "seed: global endpoint + region",
            config("data").endpoint("https://s3.amazonaws.com").region("us-west-2"),
            "https://s3.us-west-2.amazonaws.com",
            "us-west-2",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "region from regional endpoint",
            config("data").endpoint("https://s3.eu-west-1.amazonaws.com"),
            "https://s3.eu-west-1.amazonaws.com",
            "eu-west-1",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "legacy dash endpoint",
            config("data").endpoint("https://s3-ap-southeast-2.amazonaws.com"),
            "https://s3.ap-southeast-2.amazonaws.com",
            "ap-southeast-2",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "dualstack option",
            config("data").region("us-east-1").opt("dualstack", "true"),
            "https://s3.dualstack.us-east-1.amazonaws.com",
            "us-east-1",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "fips option",
            config("data").region("us-gov-west-1").opt("fips", "1"),
            "https://s3-fips.us-gov-west-1.amazonaws.com",
            "us-gov-west-1",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "fips + dualstack",
            config("data")
                .region("us-east-2")
                .opt("fips", "yes")
                .opt("dualstack", "yes"),
            "https://s3-fips.dualstack.us-east-2.amazonaws.com",
            "us-east-2",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "dualstack endpoint kept",
            config("data").endpoint("https://s3.dualstack.eu-north-1.amazonaws.com"),
            "https://s3.dualstack.eu-north-1.amazonaws.com",
            "eu-north-1",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "china region",
            config("data").region("cn-north-1"),
            "https://s3.cn-north-1.amazonaws.com.cn",
            "cn-north-1",
            VirtualHosted,
            vec![],
        ),
        cases::ok(
            "dotted bucket over https: path style",
            config("my.data").region("eu-west-3"),
            "https://s3.eu-west-3.amazonaws.com",
            "eu-west-3",
            Path,
            vec![],
        ),
        cases::ok(
            "path style asked",
            config("data").region("eu-west-3").path_style(true),
            "https://s3.eu-west-3.amazonaws.com",
            "eu-west-3",
            Path,
            vec![],
        ),
        cases::ok(
            "vpc endpoint kept",
            config("data")
                .endpoint("https://bucket.vpce-0a1b-c2d3.s3.us-east-1.vpce.amazonaws.com")
                .region("us-east-1")
                .path_style(true),
            "https://bucket.vpce-0a1b-c2d3.s3.us-east-1.vpce.amazonaws.com",
            "us-east-1",
            Path,
            vec![],
        ),
        cases::fails("region required", config("data"), "region"),
        cases::fails(
            "global endpoint without region",
            config("data").endpoint("https://s3.amazonaws.com"),
            "region",
        ),
        cases::fails(
            "region disagrees with endpoint",
            config("data")
                .endpoint("https://s3.eu-west-1.amazonaws.com")
                .region("us-east-1"),
            "region",
        ),
        cases::fails(
            "not an AWS endpoint",
            config("data").endpoint("https://minio.example.com").region("us-east-1"),
            "endpoint",
        ),
        cases::fails(
            "dotted bucket virtual-hosted",
            config("my.data").region("eu-west-3").path_style(false),
            "use_path_style",
        ),
        cases::fails(
            "bad flag",
            config("data").region("us-east-1").opt("dualstack", "maybe"),
            "options.dualstack",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::Aws::resolve);
    }

    #[test]
    fn matches_aws_hosts_only() {
        assert!(super::Aws::matches("https://s3.eu-west-1.amazonaws.com"));
        assert!(super::Aws::matches("https://s3.amazonaws.com"));
        assert!(!super::Aws::matches("https://abc.r2.cloudflarestorage.com"));
        assert!(!super::Aws::matches("https://amazonaws.com.evil.example"));
    }
}
