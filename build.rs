//! Stamps the user-agent string that sync requests send. Downloads nothing.

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_else(|_| "0.0.0".into());
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_else(|_| "unknown".into());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=LIVESYNC_USER_AGENT=livesync/{version} ({os}; {arch})");
    println!("cargo:rerun-if-changed=build.rs");
}
