//! A busybox rootfs per test, an executor over it, and helpers to run scripts.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use executor::{CgroupDriver, Executor, ExecutorConfig, ExecutorError, Outcome, OutputStream, Rootfs, Spec};
use tokio_util::sync::CancellationToken;

/// Skips (with a printed reason) a test that needs root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: this test needs root (namespaces, mounts, cgroups)");
            return;
        }
    };
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
pub const GROUP: &str = "root:x:0:\nwheel:x:10:root,app\naudio:x:29:app\napp:x:1000:\n";

/// Output of a finished run.
pub struct Ran {
    pub result: Result<Outcome, ExecutorError>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn outcome(&self) -> &Outcome {
        match &self.result {
            Ok(o) => o,
            Err(e) => panic!("run failed: {e:?}\nstdout: {}\nstderr: {}", self.stdout, self.stderr),
        }
    }

    /// Asserts exit 0 and returns stdout.
    pub fn ok(&self) -> &str {
        let o = self.outcome();
        assert!(o.exit.success(), "{}; stdout: {}\nstderr: {}", o.exit, self.stdout, self.stderr);
        &self.stdout
    }
}

/// A temporary folder with `lower/` (busybox rootfs), `upper/`, `work/`, `state/`, and an
/// executor whose cgroups live under a parent unique to this test.
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
    pub executor: Executor,
    pub cgroup_parent: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn init_program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rbuild-sandbox-test-init"))
}

/// Writes a minimal busybox rootfs: `/bin/busybox` and its applet links, passwd, group.
pub fn make_busybox_rootfs(root: &Path) {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    if std::fs::hard_link("/bin/busybox", bin.join("busybox")).is_err() {
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    }
    let list = Command::new("/bin/busybox").arg("--list").output().expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = symlink("busybox", bin.join(applet));
        }
    }
    for dir in ["etc", "root", "home/app", "tmp"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::chown(root.join("home/app"), Some(1000), Some(1000)).unwrap();
    std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(root.join("etc/group"), GROUP).unwrap();
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::with_driver(CgroupDriver::Auto)
    }

    pub fn with_driver(driver: CgroupDriver) -> Sandbox {
        let parent = format!("rbuild-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Sandbox::with_driver_and_parent(driver, &parent)
    }

    pub fn with_driver_and_parent(driver: CgroupDriver, cgroup_parent: &str) -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        make_busybox_rootfs(&tmp.path().join("lower"));
        for d in ["upper", "work", "state"] {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
        }
        let cgroup_parent = cgroup_parent.to_owned();
        let config = ExecutorConfig {
            init_program: init_program(),
            standalone_init: None,
            state_dir: tmp.path().join("state"),
            cgroup_parent: cgroup_parent.clone(),
        };
        let executor = Executor::with_cgroup_driver(config, driver).unwrap();
        Sandbox { tmp, executor, cgroup_parent }
    }

    /// A sandbox whose runs go through an OCI runtime (runc), or `None` (with a printed
    /// reason) when none is installed.
    pub fn with_oci_runtime() -> Option<Sandbox> {
        let binary = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        let Some(binary) = binary else {
            eprintln!("skipped: runc is not installed");
            return None;
        };
        let mut sb = Sandbox::new();
        let config = sb.executor.config().clone();
        sb.executor = Executor::new(config).unwrap().with_runtime(executor::Runtime::Oci { binary }).unwrap();
        Some(sb)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn rootfs(&self) -> Rootfs {
        Rootfs::Overlay {
            lower: vec![self.path("lower")],
            upper: self.path("upper"),
            work: self.path("work"),
        }
    }

    /// `/bin/sh -c script` as root in `/`.
    pub fn spec(&self, script: &str) -> Spec {
        let mut spec = Spec::new(vec!["/bin/sh".into(), "-c".into(), script.into()], self.rootfs());
        spec.env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
        spec
    }

    pub async fn run(&self, spec: Spec) -> Ran {
        self.run_with(spec, CancellationToken::new()).await
    }

    pub async fn run_with(&self, spec: Spec, cancel: CancellationToken) -> Ran {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let result = self.executor.run(spec, tx, cancel).await;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Ok(chunk) = rx.try_recv() {
            match chunk.stream {
                OutputStream::Stdout => stdout.extend(chunk.data),
                OutputStream::Stderr => stderr.extend(chunk.data),
            }
        }
        Ran {
            result,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Runs a script and returns its stdout, asserting success.
    pub async fn sh(&self, script: &str) -> String {
        self.run(self.spec(script)).await.ok().to_owned()
    }

    /// Per-run cgroups still present under this test's parent, in every hierarchy.
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        cgroup_parent_dirs(&self.cgroup_parent)
            .into_iter()
            .filter(|d| d.is_dir())
            .flat_map(|d| {
                std::fs::read_dir(d)
                    .unwrap()
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path())
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for dir in cgroup_parent_dirs(&self.cgroup_parent) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Where a relative cgroup parent lands in every mounted hierarchy (below our own cgroup).
pub fn cgroup_parent_dirs(parent: &str) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (fstype, opts) = (post[0], post.get(2).copied().unwrap_or(""));
        let own_path = match fstype {
            "cgroup2" => own.lines().find_map(|l| l.strip_prefix("0::")),
            "cgroup" => own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
                ctrls.split(',').any(|c| !c.is_empty() && opts.split(',').any(|o| o == c)).then_some(path)
            }),
            _ => None,
        };
        if let Some(own_path) = own_path {
            out.push(Path::new(pre[4]).join(own_path.trim_start_matches('/')).join(parent));
        }
    }
    out
}

/// Processes on the host whose command line contains `needle`.
pub fn host_processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Polls `check` for up to `secs` seconds.
pub async fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    check()
}
