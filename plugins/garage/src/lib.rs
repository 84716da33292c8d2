//! Garage (garagehq.deuxfleurs.fr): endpoint required (API port 3900 by
//! default), region default `garage` (Garage's `s3_region`), path style by
//! default (virtual hosts need `root_domain`).

use byos3_plugin_sdk::cases::{self, config, ConfigExt};
use byos3_plugin_sdk::{Addressing, ConfigError, DiskConfig, Endpoint, ProviderInfo, ResolveCase};

pub struct Garage;

impl byos3_plugin_sdk::Provider for Garage {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            id: "garage".into(),
            name: "Garage".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Self-hosted Garage: endpoint required, region garage and path style by default".into(),
            docs_url: Some("https://garagehq.deuxfleurs.fr/documentation/reference-manual/s3-compatibility/".into()),
            default_region: Some("garage".into()),
            endpoint_required: true,
            options: vec![],
            examples: table(),
        }
    }

    fn resolve(c: &DiskConfig) -> Result<Endpoint, ConfigError> {
        byos3_plugin_sdk::endpoint_required(
            c,
            "Garage needs the S3 API endpoint, e.g. http://garage.internal:3900",
            "garage",
            true,
            vec![],
        )
    }
}

byos3_plugin_sdk::export_provider!(Garage);

pub fn table() -> Vec<ResolveCase> {
    use Addressing::*;
    vec![
        cases::ok(
            "defaults",
            config("b").endpoint("http://garage.lan:3900"),
            "http://garage.lan:3900",
            "garage",
            Path,
            vec![],
        ),
        cases::ok(
            "region as configured",
            config("b").endpoint("http://127.0.0.1:3900").region("us-east-1"),
            "http://127.0.0.1:3900",
            "us-east-1",
            Path,
            vec![],
        ),
        cases::ok(
            "virtual host with root_domain",
            config("b").endpoint("https://s3.garage.example").path_style(false),
            "https://s3.garage.example",
            "garage",
            VirtualHosted,
            vec![],
        ),
        cases::fails("endpoint required", config("b"), "endpoint"),
    ]
}

#[cfg(test)]
mod tests {
    use byos3_plugin_sdk::Provider;

    #[test]
    fn resolve_table() {
        byos3_plugin_sdk::cases::check(&super::table(), super::Garage::resolve);
    }
}
