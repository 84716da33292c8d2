//! Resolve tables: one table per plugin, run natively by its unit tests and
//! handed to the host through `describe` (the host's tests and
//! `byos3 plugin test` run it through the built component).

use crate::{Addressing, ConfigError, DiskConfig, Endpoint, Quirk, ResolveCase};

/// A config for `bucket` with nothing else set.
pub fn config(bucket: &str) -> DiskConfig {
    DiskConfig {
        bucket: bucket.to_string(),
        endpoint: None,
        region: None,
        use_path_style: None,
        options: Vec::new(),
    }
}

/// Builder methods on [`DiskConfig`] for tables.
pub trait ConfigExt: Sized {
    fn endpoint(self, url: &str) -> Self;
    fn region(self, region: &str) -> Self;
    fn path_style(self, on: bool) -> Self;
    fn opt(self, name: &str, value: &str) -> Self;
}

impl ConfigExt for DiskConfig {
    fn endpoint(mut self, url: &str) -> Self {
        self.endpoint = Some(url.to_string());
        self
    }
    fn region(mut self, region: &str) -> Self {
        self.region = Some(region.to_string());
        self
    }
    fn path_style(mut self, on: bool) -> Self {
        self.use_path_style = Some(on);
        self
    }
    fn opt(mut self, name: &str, value: &str) -> Self {
        self.options.push((name.to_string(), value.to_string()));
        self
    }
}

/// A row expecting an endpoint.
pub fn ok(
    name: &str,
    config: DiskConfig,
    url: &str,
    region: &str,
    addressing: Addressing,
    quirks: Vec<Quirk>,
) -> ResolveCase {
    ResolveCase {
        name: name.to_string(),
        config,
        expect: Ok(crate::endpoint(url, region, addressing, quirks)),
    }
}

/// A row expecting a config error on `field`.
pub fn fails(name: &str, config: DiskConfig, field: &str) -> ResolveCase {
    ResolveCase {
        name: name.to_string(),
        config,
        expect: Err(field.to_string()),
    }
}

/// Runs a table against `resolve`; panics listing every failing row.
pub fn check(cases: &[ResolveCase], resolve: impl Fn(&DiskConfig) -> Result<Endpoint, ConfigError>) {
    let mut failures = Vec::new();
    for case in cases {
        let got = resolve(&case.config);
        let pass = match (&case.expect, &got) {
            (Ok(want), Ok(got)) => want == got,
            (Err(field), Err(e)) => *field == e.field && !e.message.is_empty(),
            _ => false,
        };
        if !pass {
            failures.push(format!("  {}: expected {:?}, got {:?}", case.name, case.expect, got));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} resolve cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
