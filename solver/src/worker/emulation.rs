//! Running steps for another CPU architecture: the kernel's binfmt_misc hands foreign
//! binaries to a registered emulator (qemu-user-static with the `F` flag, so it works inside
//! the sandbox). Without one the step would fail with a bare "exec format error"; this says
//! what is missing instead.

use registry::Platform;
use std::path::Path;

/// The binfmt_misc handler name qemu-user-static registers for a GOARCH architecture.
fn qemu_name(architecture: &str) -> Option<&'static str> {
    Some(match architecture {
        "arm64" => "aarch64",
        "arm" => "arm",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "386" => "i386",
        "amd64" => "x86_64",
        _ => return None,
    })
}

/// Architectures the host runs natively besides its own.
fn native(host: &str, target: &str) -> bool {
    host == target || (host == "amd64" && target == "386") || (host == "arm64" && target == "arm")
}

/// `Err` with a message naming what to install when `platform`'s binaries cannot run here.
pub fn check(platform: &Platform, binfmt_dir: &Path) -> Result<(), String> {
    let host = Platform::host();
    if platform.os != "linux" {
        return Err(format!("cannot run {platform} steps on a {host} host"));
    }
    if native(&host.architecture, &platform.architecture) {
        return Ok(());
    }
    let Some(name) = qemu_name(&platform.architecture) else {
        return Err(format!("cannot run {platform} steps: no emulator known for {}", platform.architecture));
    };
    let handler = binfmt_dir.join(format!("qemu-{name}"));
    match std::fs::read_to_string(&handler) {
        Ok(text) if text.lines().next() == Some("enabled") => Ok(()),
        Ok(_) => Err(format!(
            "cannot run {platform} steps: the binfmt_misc handler {} is disabled",
            handler.display()
        )),
        Err(_) => Err(format!(
            "cannot run {platform} steps: no binfmt_misc handler for {name} (install qemu-user-static and \
             register it, e.g. `apt-get install qemu-user-static binfmt-support`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_foreign_and_missing_handlers() {
        let dir = tempfile::tempdir().unwrap();
        let host = Platform::host();
        assert!(check(&host, dir.path()).is_ok());
        let foreign: Platform =
            if host.architecture == "arm64" { "linux/amd64" } else { "linux/arm64" }.parse().unwrap();
        let err = check(&foreign, dir.path()).unwrap_err();
        assert!(err.contains("qemu-user-static"), "{err}");
        let name = qemu_name(&foreign.architecture).unwrap();
        std::fs::write(dir.path().join(format!("qemu-{name}")), "enabled\ninterpreter /usr/bin/x\n").unwrap();
        assert!(check(&foreign, dir.path()).is_ok());
        std::fs::write(dir.path().join(format!("qemu-{name}")), "disabled\n").unwrap();
        assert!(check(&foreign, dir.path()).unwrap_err().contains("disabled"));
        assert!(check(&"windows/amd64".parse().unwrap(), dir.path()).is_err());
    }
}
