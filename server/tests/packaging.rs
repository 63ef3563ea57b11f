//! What ships beside the code says what Cargo.toml says: the images' labels, the licence,
//! and the two Dockerfiles' shared dependency build (`.ci/containers` builds and runs them).

use std::path::Path;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// `[workspace.package]` of the root Cargo.toml.
fn workspace_package() -> toml::Table {
    let manifest: toml::Table = repo_file("Cargo.toml").parse().unwrap();
    manifest["workspace"]["package"].as_table().unwrap().clone()
}

/// The value of `LABEL key="value"` in a Dockerfile.
fn label(dockerfile: &str, key: &str) -> String {
    let text = repo_file(dockerfile);
    let needle = format!("{key}=\"");
    let start =
        text.find(&needle).unwrap_or_else(|| panic!("{dockerfile} has no label {key}")) + needle.len();
    text[start..][..text[start..].find('"').unwrap()].to_owned()
}

#[test]
fn both_images_are_labelled_with_the_workspace_version_licence_and_source() {
    let package = workspace_package();
    for dockerfile in ["Dockerfile.server", "Dockerfile.client"] {
        assert_eq!(
            label(dockerfile, "org.opencontainers.image.version"),
            package["version"].as_str().unwrap()
        );
        assert_eq!(
            label(dockerfile, "org.opencontainers.image.licenses"),
            package["license"].as_str().unwrap()
        );
        assert_eq!(
            label(dockerfile, "org.opencontainers.image.source"),
            package["repository"].as_str().unwrap()
        );
    }
}

#[test]
fn the_licence_file_is_the_one_cargo_toml_names() {
    assert_eq!(workspace_package()["license"].as_str(), Some("MIT"));
    assert!(repo_file("LICENSE").starts_with("MIT License\n"));
}

#[test]
fn both_dockerfiles_build_the_dependencies_with_the_same_steps() {
    // The engine's layer cache reuses a step only after identical steps, so the dependency
    // build is shared only if everything before it matches, to the byte.
    let prefix = |dockerfile: &str| {
        let text = repo_file(dockerfile);
        let from = text.find("\nFROM ").expect("a FROM line");
        let own = text.find("\nCOPY protocol protocol\n").expect("the sources copied after the dependencies");
        text[from..own].to_owned()
    };
    let server = prefix("Dockerfile.server");
    assert!(server.ends_with("cargo build --release --locked -p papo-server -p papo"), "{server}");
    assert_eq!(server, prefix("Dockerfile.client"));
}

#[test]
fn both_dockerfiles_copy_every_workspace_members_manifest_and_stub_its_library() {
    // Cargo reads every member's manifest before it builds anything, so one member the
    // dependency stage forgot fails the image build (powercut/ once did).
    let root: toml::Table = repo_file("Cargo.toml").parse().unwrap();
    let members = root["workspace"]["members"].as_array().unwrap();
    assert!(members.len() >= 5, "{members:?}");
    for dockerfile in ["Dockerfile.server", "Dockerfile.client"] {
        let text = repo_file(dockerfile);
        for member in members {
            let member = member.as_str().unwrap();
            let copy = format!("COPY {member}/Cargo.toml {member}/\n");
            assert!(text.contains(&copy), "{dockerfile} does not copy {member}'s manifest");
            let manifest: toml::Table = repo_file(&format!("{member}/Cargo.toml")).parse().unwrap();
            let has_library =
                Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../{member}/src/lib.rs")).exists()
                    || manifest.contains_key("lib");
            if has_library {
                let stub = format!("{member}/src/lib.rs");
                assert!(text.contains(&stub), "{dockerfile} does not stub {stub}");
            }
            // A bench cargo cannot find fails the build as a missing library does
            // (tui-client's groups bench once did).
            let benches = manifest.get("bench").and_then(|benches| benches.as_array());
            for bench in benches.into_iter().flatten() {
                let stub = format!("{member}/benches/{}.rs", bench["name"].as_str().unwrap());
                assert!(text.contains(&stub), "{dockerfile} does not stub {stub}");
            }
        }
    }
}
