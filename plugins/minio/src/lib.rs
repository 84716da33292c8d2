//! MinIO: any http/https endpoint (usually with a port), path style by
//! default (virtual hosts need MinIO's `MINIO_DOMAIN`), region default
//! `us-east-1` (MinIO's default `MINIO_REGION`).

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::{Addressing, ConfigError, DiskConfig, Endpoint, ProviderInfo, ResolveCase};

pub struct Minio;

impl byos3_plugin_sdk::Provider for Minio {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "minio".into(),
            name: "MinIO".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Self-hosted MinIO: endpoint required, path style and region us-east-1 by default".into(),
            docs_url: Some("https://min.io/docs/minio/linux/developers/minio-drivers.html".into()),
            default_region: Some("us-east-1".into()),
            endpoint_required: true,
            options: vec![],
            examples: table(),
        }
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        byos3_plugin_sdk::endpoint_required(
            c,
            "MinIO needs the server's endpoint URL, e.g. http://minio.internal:9000",
            "us-east-1",
            true,
            vec![],
        )
    }
}

byos3_plugin_sdk::export_provider!(Minio);

pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "path style by default",
            config("b").endpoint("http://minio.local:9000"),
            "http://minio.local:9000",
            "us-east-1",
            Path,
            vec![],
        ),
        cases::ok(
            "seed config",
            config("b").endpoint("http://127.0.0.1:9000").path_style(true),
            "http://127.0.0.1:9000",
            "us-east-1",
            Path,
            vec![],
        ),
        cases::ok(
            "https with port and region",
            config("b").endpoint("https://minio.example.com:9443").region("eu-1"),
            "https://minio.example.com:9443",
            "eu-1",
            Path,
            vec![],
        ),
        cases::ok(
            "virtual host when asked",
            config("b").endpoint("https://minio.example.com").path_style(false),
            "https://minio.example.com",
            "us-east-1",
            VirtualHosted,
            vec![],
        ),
        cases::fails("endpoint required", config("b"), "endpoint"),
        cases::fails("not http", config("b").endpoint("ftp://minio:21"), "endpoint"),
        cases::fails(
            "virtual host on an IP",
            config("b").endpoint("http://127.0.0.1:9000").path_style(false),
            "use_path_style",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::Minio::resolve);
    }
}
