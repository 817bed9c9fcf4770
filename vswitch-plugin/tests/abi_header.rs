//! The committed C header, `include/flowlog.h`, is what cbindgen makes of
//! `src/abi/` with `cbindgen.toml`: a change to the ABI that forgot the
//! header fails here. Regenerate it with
//!
//! ```text
//! cargo test -p vswitch-plugin --test abi_header -- --ignored regenerate
//! ```

use std::path::{Path, PathBuf};

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../include/flowlog.h")
}

/// The header as the sources give it now.
fn generate() -> Vec<u8> {
    let config = cbindgen::Config::from_file(crate_dir().join("cbindgen.toml"))
        .expect("vswitch-plugin/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir().join("src/abi/mod.rs"))
        .generate()
        .expect("cbindgen reads src/abi/");
    let mut out = Vec::new();
    bindings.write(&mut out);
    out
}

#[test]
fn committed_header_matches_the_sources() {
    let want = generate();
    let have = std::fs::read(header_path()).unwrap_or_default();
    if have != want {
        let (have, want) = (
            String::from_utf8_lossy(&have),
            String::from_utf8_lossy(&want),
        );
        let first = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
        panic!(
            "include/flowlog.h is out of date with vswitch-plugin/src/abi/ (first difference \
             at line {}:\n  committed: {:?}\n  generated: {:?})\nregenerate it with\n  \
             cargo test -p vswitch-plugin --test abi_header -- --ignored regenerate\n\
             and commit it",
            first + 1,
            have.lines().nth(first).unwrap_or("<end of file>"),
            want.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

/// Writes `include/flowlog.h` from the sources (ignored: run on purpose).
#[test]
#[ignore = "writes include/flowlog.h; run with --ignored regenerate"]
fn regenerate() {
    let p = header_path();
    std::fs::write(&p, generate()).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
    eprintln!("wrote {}", p.display());
}
