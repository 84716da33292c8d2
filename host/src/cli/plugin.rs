//! `byos3 plugin list|resolve|test|new|pack`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::plugin::conformance::{self, Target};
use crate::plugin::{default_cache_dir, default_plugin_dir, DiskConfig, Limits, PluginHost, ResolveError};
use crate::s3::Credentials;

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// List the plugins of a plugin directory: id, name, version, contract, file, sha256, status.
    List {
        #[arg(long, value_name = "DIR")]
        plugin_dir: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Resolve a disk configuration into an endpoint; prints JSON.
    Resolve {
        /// The provider plugin id; auto-detected from the endpoint if omitted.
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        path_style: bool,
        /// A provider option, `key=value` (repeatable).
        #[arg(long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
        #[arg(long, value_name = "DIR")]
        plugin_dir: Option<PathBuf>,
    },
    /// Conformance suite of one plugin against a live server (credentials
    /// from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    Test {
        /// The plugin component (`.wasm`).
        file: PathBuf,
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        path_style: bool,
    },
    /// Create a new provider plugin crate from the template.
    New {
        /// The plugin id (`[a-z0-9][a-z0-9-]*`).
        name: String,
        /// The plugins workspace to add it to.
        #[arg(long, value_name = "DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins"))]
        workspace: PathBuf,
    },
    /// Turn a core module built by wit-bindgen into a plugin component.
    Pack { core: PathBuf, out: PathBuf },
}

pub async fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::List { plugin_dir, json } => list(plugin_dir, json).await,
        PluginCommand::Resolve {
            provider,
            bucket,
            endpoint,
            region,
            path_style,
            options,
            plugin_dir,
        } => {
            let options = options
                .iter()
                .map(|o| o.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect::<Option<Vec<_>>>()
                .context("--option takes KEY=VALUE")?;
            let cfg = DiskConfig {
                bucket,
                endpoint,
                region,
                use_path_style: path_style.then_some(true),
                provider,
                options,
            };
            resolve(plugin_dir, cfg).await
        }
        PluginCommand::Test {
            file,
            endpoint,
            bucket,
            region,
            path_style,
        } => conformance(&file, &endpoint, &bucket, region, path_style).await,
        PluginCommand::New { name, workspace } => new_plugin(&name, &workspace),
        PluginCommand::Pack { core, out } => {
            let bytes = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
            let component = crate::plugin::componentize(&bytes).with_context(|| core.display().to_string())?;
            std::fs::write(&out, component).with_context(|| format!("writing {}", out.display()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn load(dir: Option<PathBuf>) -> anyhow::Result<PluginHost> {
    let dir = dir.unwrap_or_else(default_plugin_dir);
    if !dir.is_dir() {
        bail!("plugin directory {} does not exist (build the bundled plugins with scripts/build-plugins, or set BYOS3_PLUGIN_DIR)", dir.display());
    }
    Ok(PluginHost::load_dir(&dir, Some(&default_cache_dir()), Limits::default()).await?)
}

async fn list(dir: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let host = load(dir).await?;
    let plugins = host.plugins();
    if json {
        let rows: Vec<_> = plugins
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.id, "name": p.name, "version": p.version, "contract_version": p.contract_version,
                    "file": p.file, "sha256": p.sha256, "status": p.status.to_string(),
                    "default_region": p.default_region, "endpoint_required": p.endpoint_required,
                    "options": p.options.iter().map(|(n, d)| serde_json::json!({"name": n, "description": d})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<44} {:<8} {:<9} {:<20} {:<16} STATUS",
        "ID", "NAME", "VERSION", "CONTRACT", "FILE", "SHA256"
    );
    for p in &plugins {
        let file = p
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{:<14} {:<44} {:<8} {:<9} {:<20} {:<16} {}",
            p.id,
            p.name,
            p.version,
            p.contract_version,
            file,
            &p.sha256[..16],
            p.status
        );
    }
    let r = host.load_report();
    eprintln!(
        "{} plugins ({} compiled, {} from cache) in {:?}",
        plugins.len(),
        r.compiled,
        r.cached,
        r.elapsed
    );
    Ok(ExitCode::SUCCESS)
}

async fn resolve(dir: Option<PathBuf>, cfg: DiskConfig) -> anyhow::Result<ExitCode> {
    let host = load(dir).await?;
    match host.resolve(&cfg).await {
        Ok(r) => {
            println!("{}", serde_json::to_string_pretty(&r.to_json())?);
            Ok(ExitCode::SUCCESS)
        }
        Err(ResolveError::Config {
            provider,
            field,
            message,
        }) => {
            let out = serde_json::json!({"error": "config", "provider": provider, "field": field, "message": message});
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

async fn conformance(
    file: &Path,
    endpoint: &str,
    bucket: &str,
    region: Option<String>,
    path_style: bool,
) -> anyhow::Result<ExitCode> {
    let access = std::env::var("AWS_ACCESS_KEY_ID").context("AWS_ACCESS_KEY_ID is not set")?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").context("AWS_SECRET_ACCESS_KEY is not set")?;
    let target = Target {
        endpoint: endpoint.to_string(),
        bucket: bucket.to_string(),
        region,
        path_style,
        credentials: Credentials::new(access, secret, None),
    };
    let outcomes = conformance::run(file, &target, Some(&default_cache_dir())).await;
    for o in &outcomes {
        println!("{} {}: {}", if o.passed { "PASS" } else { "FAIL" }, o.name, o.detail);
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    println!("{} passed, {failed} failed", outcomes.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

const TEMPLATE_CARGO: &str = include_str!("../../../plugins/template/Cargo.toml");
const TEMPLATE_LIB: &str = include_str!("../../../plugins/template/src/lib.rs");

fn new_plugin(name: &str, workspace: &Path) -> anyhow::Result<ExitCode> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && name != "template";
    if !valid {
        bail!("plugin name {name:?} must be [a-z0-9][a-z0-9-]* (at most 63 bytes) and not \"template\"");
    }
    let manifest = workspace.join("Cargo.toml");
    let ws = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let dir = workspace.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let member = format!("    \"{name}\",\n");
    let anchor = "    \"template\",\n";
    let Some(at) = ws.find(anchor) else {
        bail!(
            "{} has no `\"template\",` line in its members list to add the new crate after",
            manifest.display()
        );
    };
    let cargo = TEMPLATE_CARGO
        .replace("byos3-plugin-template", &format!("byos3-plugin-{name}"))
        .replace("template (copy with `byos3 plugin new NAME`)", name)
        .replace("kind = \"template\"", "kind = \"provider\"");
    let lib = TEMPLATE_LIB.replace(
        "const ID: &str = \"template\";",
        &format!("const ID: &str = \"{name}\";"),
    );
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(dir.join("Cargo.toml"), cargo)?;
    std::fs::write(dir.join("src/lib.rs"), lib)?;
    let mut ws = ws;
    ws.insert_str(at + anchor.len(), &member);
    std::fs::write(&manifest, ws)?;
    println!("created {} (crate byos3-plugin-{name}, id {name:?})", dir.display());
    println!("next: edit {}/src/lib.rs, then", dir.display());
    println!(
        "  cargo test --manifest-path {} -p byos3-plugin-{name}",
        manifest.display()
    );
    println!("  scripts/build-plugins   # -> plugins/dist/{name}.wasm");
    Ok(ExitCode::SUCCESS)
}
