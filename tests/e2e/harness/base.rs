//! The lab of one test process: a registry and a busybox base image that rbuild itself built
//! `FROM scratch` from Debian's `busybox-static` and pushed there, made once on first use.

use super::rbuild::{Cmd, Rbuild};
use super::registry::Registry;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

/// Debian's static busybox.
const BUSYBOX: &str = "/bin/busybox";

/// `PATH` of the base image, as in the upstream busybox image.
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Accounts laid out like the busybox image most Dockerfile tests assume (as
/// `bench/make-base-images.sh` writes them).
const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
";

const GROUP: &str = "\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nobody:x:65534:
";

/// Debian's busybox has no `adduser` applet: a stand-in with the options Dockerfiles use.
const ADDUSER: &str = r#"#!/bin/sh
uid=; grp=; home=; shell=/bin/sh; gecos=; nohome=
while [ $# -gt 0 ]; do case "$1" in
  -D|-S) shift;; -H) nohome=1; shift;; -u) uid=$2; shift 2;; -G) grp=$2; shift 2;;
  -h) home=$2; shift 2;; -s) shell=$2; shift 2;; -g) gecos=$2; shift 2;; -*) shift;; *) break;; esac; done
name=$1; [ -n "$name" ] || { echo "adduser: missing user name" >&2; exit 1; }
if [ -n "$2" ]; then exec addgroup "$1" "$2"; fi
grep -q "^$name:" /etc/passwd && { echo "adduser: user '$name' in use" >&2; exit 1; }
[ -n "$uid" ] || uid=$(awk -F: 'BEGIN{m=999} $3>m && $3<65534 {m=$3} END{print m+1}' /etc/passwd)
if [ -n "$grp" ]; then
  gid=$(awk -F: -v g="$grp" '$1==g{print $3}' /etc/group); [ -n "$gid" ] || { echo "adduser: unknown group $grp" >&2; exit 1; }
else
  gid=$(awk -F: -v g="$name" '$1==g{print $3}' /etc/group)
  [ -n "$gid" ] || { gid=$uid; echo "$name:x:$gid:" >> /etc/group; }
fi
[ -n "$home" ] || home=/home/$name
echo "$name:x:$uid:$gid:$gecos:$home:$shell" >> /etc/passwd
echo "$name:!:0:0:99999:7:::" >> /etc/shadow
[ -n "$nohome" ] || { mkdir -p "$home" && chown "$uid:$gid" "$home"; }
"#;

/// Debian's busybox has no `addgroup` applet either.
const ADDGROUP: &str = r#"#!/bin/sh
gid=
while [ $# -gt 0 ]; do case "$1" in -S) shift;; -g) gid=$2; shift 2;; -*) shift;; *) break;; esac; done
if [ -n "$2" ]; then  # addgroup USER GROUP: add an existing user to an existing group
  grep -q "^$2:" /etc/group || { echo "addgroup: unknown group $2" >&2; exit 1; }
  awk -F: -v OFS=: -v u="$1" -v g="$2" '$1==g{ $4 = ($4=="" ? u : $4 "," u) } {print}' /etc/group > /etc/group.new && cat /etc/group.new > /etc/group && rm /etc/group.new
  exit 0
fi
[ -n "$1" ] || { echo "addgroup: missing group name" >&2; exit 1; }
grep -q "^$1:" /etc/group && { echo "addgroup: group '$1' in use" >&2; exit 1; }
[ -n "$gid" ] || gid=$(awk -F: 'BEGIN{m=999} $3>m && $3<65534 {m=$3} END{print m+1}' /etc/group)
echo "$1:x:$gid:" >> /etc/group
"#;

/// The Dockerfile that turns the rootfs folder into the base image.
const BASE_DOCKERFILE: &str = "\
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD [\"sh\"]
";

/// The registry and base image shared by the tests of one process.
pub struct Lab {
    /// The registry (no auth).
    pub registry: Registry,
    /// Full reference of the busybox base image (`127.0.0.1:PORT/lab/busybox:latest`).
    pub base: String,
    base_config: OnceLock<serde_json::Value>,
}

impl Lab {
    /// The base image's config blob (read back with skopeo, an independent client).
    pub fn base_config(&self) -> &serde_json::Value {
        self.base_config.get_or_init(|| {
            let o = Cmd::tool("skopeo")
                .args(["inspect", "--config", "--tls-verify=false"])
                .arg(format!("docker://{}", self.base))
                .expect_ok();
            serde_json::from_str(&o.stdout).expect("skopeo config json")
        })
    }
}

/// The process's lab, made on first use: a registry and the busybox base image in it.
pub fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| {
        let registry = Registry::start();
        let base = registry.image("lab/busybox:latest");
        push_busybox(&base);
        Lab { registry, base, base_config: OnceLock::new() }
    })
}

/// Builds the busybox base image with rbuild and pushes it as `reference`.
pub fn push_busybox(reference: &str) {
    let ctx = tempfile::Builder::new().prefix("rbuild-e2e-base-").tempdir().expect("temp dir");
    busybox_rootfs(&ctx.path().join("rootfs"));
    std::fs::write(ctx.path().join("Dockerfile"), BASE_DOCKERFILE).expect("write Dockerfile");
    let rb = Rbuild::new();
    rb.build(ctx.path()).args(["-t", reference, "--push"]).expect_ok();
}

/// Lays out a busybox root file system in `root` (which must not exist yet).
pub fn busybox_rootfs(root: &Path) {
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "home", "var/spool/mail", "var/www"]
    {
        std::fs::create_dir_all(root.join(d)).expect("rootfs dir");
    }
    for d in ["proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).expect("rootfs dir");
    }
    set_mode(&root.join("tmp"), 0o1777);
    set_mode(&root.join("root"), 0o700);
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy /bin/busybox (busybox-static)");
    set_mode(&root.join("bin/busybox"), 0o755);
    // The applet links all in /bin, as in the upstream busybox image (scenarios name `/bin/awk`).
    Cmd::tool("chroot").arg(root).args(["/bin/busybox", "--install", "-s", "/bin"]).expect_ok();
    for (path, text, mode) in [
        ("etc/passwd", PASSWD, 0o644),
        ("etc/group", GROUP, 0o644),
        ("etc/shadow", "root:*:0:0:99999:7:::\n", 0o640),
        ("etc/nsswitch.conf", "hosts: files dns\n", 0o644),
        ("bin/adduser", ADDUSER, 0o755),
        ("bin/addgroup", ADDGROUP, 0o755),
    ] {
        let p = root.join(path);
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, text).expect("write rootfs file");
        set_mode(&p, mode);
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
