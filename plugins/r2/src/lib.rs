//! Cloudflare R2. Region `auto` (empty and `us-east-1` are aliases). The
//! endpoint is `https://<account_id>.r2.cloudflarestorage.com`, from the
//! `account_id` option or from the endpoint; jurisdiction hosts
//! (`<id>.eu.r2…`, `<id>.fedramp.r2…`) are kept intact, never rewritten to
//! the global host, since a bucket created in a jurisdiction exists only
//! there. R2 rejects checksum headers and wants uniform part sizes.

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::probe::{self, HostBucket};
use byos3_plugin_sdk::{
    cfg, config_error, endpoint, option, url, Addressing, ConfigError, DiskConfig, Endpoint, ProbeCode, ProbeReport,
    ProviderInfo, Quirk, ResolveCase,
};

pub struct R2;

const DOMAIN: &str = ".r2.cloudflarestorage.com";
const OPTIONS: &[&str] = &["account_id", "jurisdiction"];

fn quirks() -> Vec<Quirk> {
    vec![Quirk::NoChecksumHeaders, Quirk::UniformPartSize]
}

fn valid_account(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// (account id, jurisdiction) of an R2 host.
fn parse_host(host: &str) -> Option<(&str, Option<&str>)> {
    let rest = host.strip_suffix(DOMAIN)?;
    match rest.split_once('.') {
        None => Some((rest, None)),
        Some((acct, j)) if !j.contains('.') => Some((acct, Some(j))),
        Some(_) => None,
    }
}

impl byos3_plugin_sdk::Provider for R2 {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "r2".into(),
            name: "Cloudflare R2".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Cloudflare R2: region auto, https://<account_id>[.<jurisdiction>].r2.cloudflarestorage.com"
                .into(),
            docs_url: Some("https://developers.cloudflare.com/r2/api/s3/api/".into()),
            default_region: Some("auto".into()),
            endpoint_required: false,
            options: vec![
                option(
                    "account_id",
                    "the Cloudflare account id (32 hex characters), if no endpoint is given",
                ),
                option("jurisdiction", "eu or fedramp, for buckets created in a jurisdiction"),
            ],
            examples: table(),
        }
    }

    fn matches(endpoint: &str) -> bool {
        url::Url::parse(endpoint).is_ok_and(|u| u.host.ends_with(DOMAIN))
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        cfg::check_bucket(&c.bucket)?;
        cfg::only_options(c, OPTIONS)?;
        match cfg::region(c) {
            None | Some("auto" | "us-east-1") => {}
            Some(r) => {
                return Err(config_error(
                    "region",
                    format!("R2 signs with region \"auto\", not {r:?}; leave region empty or set auto"),
                ))
            }
        }
        let account = cfg::option(c, "account_id").map(str::to_ascii_lowercase);
        if let Some(a) = &account {
            if !valid_account(a) {
                return Err(config_error(
                    "options.account_id",
                    format!("{a:?} is not an account id (32 hex characters)"),
                ));
            }
        }
        let jurisdiction = match cfg::option(c, "jurisdiction").map(str::to_ascii_lowercase).as_deref() {
            None | Some("default") => None,
            Some(j @ ("eu" | "fedramp")) => Some(j.to_string()),
            Some(j) => {
                return Err(config_error(
                    "options.jurisdiction",
                    format!("{j:?} is not an R2 jurisdiction (eu, fedramp)"),
                ))
            }
        };
        let url = match url::endpoint_of(c)? {
            Some(u) => {
                let Some((acct, j)) = parse_host(&u.host) else {
                    return Err(config_error(
                        "endpoint",
                        format!("{} is not an R2 endpoint (<account_id>{DOMAIN})", u.host),
                    ));
                };
                if !u.is_https() || u.port.is_some() || !u.path.is_empty() {
                    return Err(config_error(
                        "endpoint",
                        format!("R2 endpoints are https://{}, without port or path", u.host),
                    ));
                }
                if !valid_account(acct) {
                    return Err(config_error(
                        "endpoint",
                        format!("{acct:?} in the endpoint is not an account id (32 hex characters)"),
                    ));
                }
                if account.as_deref().is_some_and(|a| a != acct) {
                    return Err(config_error(
                        "options.account_id",
                        "the account_id option disagrees with the endpoint's account",
                    ));
                }
                if jurisdiction.is_some() && jurisdiction.as_deref() != j {
                    return Err(config_error(
                        "options.jurisdiction",
                        "the jurisdiction option disagrees with the endpoint's host",
                    ));
                }
                u
            }
            None => {
                let Some(a) = account else {
                    return Err(config_error(
                        "endpoint",
                        "R2 needs the account: give the endpoint https://<account_id>.r2.cloudflarestorage.com or the option account_id",
                    ));
                };
                let j = jurisdiction.map(|j| format!(".{j}")).unwrap_or_default();
                url::Url::parse(&format!("https://{a}{j}{DOMAIN}")).expect("well-formed R2 URL")
            }
        };
        let addressing = cfg::addressing(c, &url, false)?;
        Ok(endpoint(url.to_url(), "auto", addressing, quirks()))
    }

    fn probe(c: &DiskConfig, ep: &Endpoint, prefix: &str) -> ProbeReport {
        let mut r = probe::standard(c, ep, prefix, &mut HostBucket);
        if r.code == ProbeCode::BucketNotFound {
            r.hint = Some(
                "check the bucket name; a bucket created in a jurisdiction (EU, FedRAMP) exists only at \
                 https://<account_id>.<jurisdiction>.r2.cloudflarestorage.com: set the jurisdiction option or that endpoint"
                    .into(),
            );
        }
        r
    }
}

byos3_plugin_sdk::export_provider!(R2);

const ACCT: &str = "0123456789abcdef0123456789abcdef";

pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    let global = format!("https://{ACCT}.r2.cloudflarestorage.com");
    let eu = format!("https://{ACCT}.eu.r2.cloudflarestorage.com");
    let fedramp = format!("https://{ACCT}.fedramp.r2.cloudflarestorage.com");
    vec![
        cases::ok(
            "endpoint, no region",
            config("data").endpoint(&global),
            &global,
            "auto",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "us-east-1 aliases auto",
            config("data").endpoint(&global).region("us-east-1"),
            &global,
            "auto",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "empty region aliases auto",
            config("data").endpoint(&global).region(""),
            &global,
            "auto",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "account_id option",
            config("data").opt("account_id", ACCT),
            &global,
            "auto",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "eu jurisdiction endpoint kept",
            config("data").endpoint(&eu).region("auto"),
            &eu,
            "auto",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "fedramp jurisdiction endpoint kept",
            config("data").endpoint(&fedramp),
            &fedramp,
            "auto",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "jurisdiction option",
            config("data").opt("account_id", ACCT).opt("jurisdiction", "eu"),
            &eu,
            "auto",
            VirtualHosted,
            quirks(),
        ),
        cases::ok(
            "path style asked",
            config("data").endpoint(&global).path_style(true),
            &global,
            "auto",
            Path,
            quirks(),
        ),
        cases::fails("no account", config("data"), "endpoint"),
        cases::fails(
            "wrong region",
            config("data").endpoint(&global).region("eu-west-1"),
            "region",
        ),
        cases::fails(
            "bad account id",
            config("data").opt("account_id", "xyz"),
            "options.account_id",
        ),
        cases::fails(
            "jurisdiction disagrees",
            config("data").endpoint(&global).opt("jurisdiction", "eu"),
            "options.jurisdiction",
        ),
        cases::fails(
            "not an R2 host",
            config("data").endpoint("https://s3.example.com"),
            "endpoint",
        ),
        cases::fails(
            "unknown jurisdiction",
            config("data").opt("account_id", ACCT).opt("jurisdiction", "mars"),
            "options.jurisdiction",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::R2::resolve);
    }

    #[test]
    fn matches_r2_hosts() {
        assert!(super::R2::matches(
            "https://0123456789abcdef0123456789abcdef.eu.r2.cloudflarestorage.com"
        ));
        assert!(!super::R2::matches("https://s3.amazonaws.com"));
    }
}
