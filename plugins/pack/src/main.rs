//! `byos3-plugin-pack CORE.wasm OUT.wasm`: wraps a core module built by
//! `wit-bindgen` into a validated component, and refuses one that imports
//! anything but the host's `byos3:provider` interfaces (no WASI).

use std::process::ExitCode;

fn pack(core: &[u8]) -> Result<Vec<u8>, String> {
    if !wasmparser::Parser::is_core_wasm(core) {
        return Err("not a core WebAssembly module".into());
    }
    let component = wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format!("{e:#}"))?;
    // Only the outer component's imports matter: nested components and
    // modules import from their parent.
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(&component) {
        let payload = payload.map_err(|e| e.to_string())?;
        match &payload {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            _ => {}
        }
        if let (1, wasmparser::Payload::ComponentImportSection(reader)) = (depth, payload) {
            for import in reader {
                let import = import.map_err(|e| e.to_string())?;
                let name = import.name.0;
                if !name.starts_with("byos3:provider/") {
                    return Err(format!(
                        "the plugin imports {name:?}; plugins may import only byos3:provider interfaces"
                    ));
                }
            }
        }
    }
    Ok(component)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: byos3-plugin-pack CORE.wasm OUT.wasm");
        return ExitCode::from(2);
    };
    let result = std::fs::read(input)
        .map_err(|e| format!("cannot read {input}: {e}"))
        .and_then(|core| pack(&core))
        .and_then(|c| std::fs::write(output, c).map_err(|e| format!("cannot write {output}: {e}")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("byos3-plugin-pack: {input}: {e}");
            ExitCode::FAILURE
        }
    }
}
