//! Docker's default seccomp profile, compiled to one classic-BPF filter, for the
//! capability set the sandbox grants (no CAP_SYS_ADMIN, so `mount`, `unshare`, `setns`,
//! `keyctl`, `bpf`, module loading, ... fail with EPERM); `clone3` fails with ENOSYS so that
//! glibc falls back to `clone`, whose namespace flags the filter checks.
//!
//! Our own compiler rather than a general one (the `seccompiler` crate was used first): the
//! filter is loaded for every RUN, and the kernel's cost of loading it (conversion, JIT and
//! the per-syscall action cache, which runs the filter once per syscall number) grows with
//! its length. A general compiler tests the allowed syscalls one after another (several
//! hundred instructions here); this one searches the sorted ranges of syscall numbers as a
//! balanced tree (under 80 instructions on x86_64, 6 comparisons per syscall).
//!
//! Like `seccompiler`, weaker than Docker in one way: processes of a foreign architecture
//! (32-bit x86 binaries on x86_64) are killed instead of getting the profile applied.

mod table;

/// Namespace flags of `clone(2)` that need CAP_SYS_ADMIN (Docker's mask 0x7E020000).
pub(crate) const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `AF_VSOCK`, refused by Docker's profile for `socket(2)`.
pub(crate) const AF_VSOCK: u64 = 40;
/// `personality(2)` values Docker allows: PER_LINUX, PER_LINUX32, UNAME26 variants, query.
pub(crate) const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// A compiled filter: classic BPF instructions, as `seccomp(2)` takes them.
pub(crate) type Program = Vec<libc::sock_filter>;

/// Why the profile could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("cannot compile the seccomp profile: {reason}")]
pub(crate) struct SeccompError {
    reason: String,
}

/// Names of the syscalls allowed without conditions on this architecture.
pub(crate) fn allowed_names() -> impl Iterator<Item = &'static str> {
    table::ALLOW.iter().map(|(name, _)| *name)
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xC000_00F3;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
/// Low 32 bits of the first argument (little-endian).
const ARG0_LOW_OFFSET: u32 = 16;

/// What the filter does with one syscall number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Allow,
    Deny,
    /// `socket`: allowed unless the family is AF_VSOCK.
    Socket,
    /// `personality`: only the values Docker allows.
    Personality,
    /// `clone`: allowed without namespace flags.
    Clone,
    /// `clone3`: ENOSYS, so that libc falls back to `clone`.
    Clone3,
}

/// Where a jump goes: an instruction, or one of the blocks at the end of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    At(usize),
    Block(Decision),
}

/// A jump instruction waiting for its targets to be laid out.
struct Pending {
    at: usize,
    jt: Target,
    jf: Target,
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The syscall numbers where the decision changes: `(first number, decision)`, from 0 up;
/// the last range runs to the end of the number space (x32 numbers included: denied).
fn ranges() -> Vec<(u32, Decision)> {
    let special = &table::SPECIAL;
    let mut decided: std::collections::BTreeMap<u32, Decision> = std::collections::BTreeMap::new();
    for (_, nr) in table::ALLOW {
        decided.insert(*nr as u32, Decision::Allow);
    }
    decided.insert(special.socket as u32, Decision::Socket);
    decided.insert(special.personality as u32, Decision::Personality);
    decided.insert(special.clone as u32, Decision::Clone);
    decided.insert(special.clone3 as u32, Decision::Clone3);
    let mut out: Vec<(u32, Decision)> = Vec::new();
    let mut next = 0u32;
    for (&nr, &d) in &decided {
        if nr > next {
            push_range(&mut out, next, Decision::Deny);
        }
        push_range(&mut out, nr, d);
        next = nr + 1;
    }
    push_range(&mut out, next, Decision::Deny);
    out
}

fn push_range(out: &mut Vec<(u32, Decision)>, first: u32, d: Decision) {
    // Neighbouring numbers with the same plain decision share a range; the special ones
    // are single numbers anyway.
    if out.last().is_none_or(|(_, last)| *last != d) {
        out.push((first, d));
    }
}

/// Emits the search tree over `ranges[lo..hi]` (the syscall number is in the accumulator)
/// and returns where it starts.
fn emit_tree(
    ranges: &[(u32, Decision)],
    lo: usize,
    hi: usize,
    prog: &mut Program,
    pending: &mut Vec<Pending>,
) -> Target {
    if hi - lo == 1 {
        return Target::Block(ranges[lo].1);
    }
    let mid = (lo + hi) / 2;
    let at = prog.len();
    prog.push(insn(JGE_K, 0, 0, ranges[mid].0));
    let jf = emit_tree(ranges, lo, mid, prog, pending);
    let jt = emit_tree(ranges, mid, hi, prog, pending);
    pending.push(Pending { at, jt, jf });
    Target::At(at)
}

/// The compiled filters, in installation order (one).
pub(crate) fn default_profile() -> Result<Vec<Program>, SeccompError> {
    let ranges = ranges();
    let mut prog: Program = vec![
        insn(LD_W_ABS, 0, 0, ARCH_OFFSET),
        insn(JEQ_K, 1, 0, AUDIT_ARCH),
        insn(RET_K, 0, 0, RET_KILL_PROCESS),
        insn(LD_W_ABS, 0, 0, NR_OFFSET),
    ];
    let mut pending = Vec::new();
    emit_tree(&ranges, 0, ranges.len(), &mut prog, &mut pending);

    // The blocks the leaves of the tree jump to. Argument checks load the first argument,
    // then jump to a return.
    let mut blocks: Vec<(Decision, usize)> = Vec::new();
    blocks.push((Decision::Socket, prog.len()));
    prog.push(insn(LD_W_ABS, 0, 0, ARG0_LOW_OFFSET));
    let at = prog.len();
    prog.push(insn(JEQ_K, 0, 0, AF_VSOCK as u32));
    pending.push(Pending { at, jt: Target::Block(Decision::Deny), jf: Target::Block(Decision::Allow) });
    blocks.push((Decision::Clone, prog.len()));
    prog.push(insn(LD_W_ABS, 0, 0, ARG0_LOW_OFFSET));
    let at = prog.len();
    // The mask has no bits in the upper half, so the low 32 bits decide.
    prog.push(insn(JSET_K, 0, 0, CLONE_NAMESPACE_FLAGS as u32));
    pending.push(Pending { at, jt: Target::Block(Decision::Deny), jf: Target::Block(Decision::Allow) });
    blocks.push((Decision::Personality, prog.len()));
    prog.push(insn(LD_W_ABS, 0, 0, ARG0_LOW_OFFSET));
    for (i, value) in PERSONALITIES.iter().enumerate() {
        let at = prog.len();
        prog.push(insn(JEQ_K, 0, 0, *value as u32));
        let jf =
            if i + 1 == PERSONALITIES.len() { Target::Block(Decision::Deny) } else { Target::At(at + 1) };
        pending.push(Pending { at, jt: Target::Block(Decision::Allow), jf });
    }

    // The returns last, so that every jump goes forward.
    blocks.push((Decision::Allow, prog.len()));
    prog.push(insn(RET_K, 0, 0, RET_ALLOW));
    blocks.push((Decision::Deny, prog.len()));
    prog.push(insn(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    blocks.push((Decision::Clone3, prog.len()));
    prog.push(insn(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
    let resolve = |from: usize, to: Target| -> Result<u8, SeccompError> {
        let to = match to {
            Target::At(i) => i,
            Target::Block(d) => {
                blocks.iter().find(|(b, _)| *b == d).map(|(_, i)| *i).expect("every block is emitted")
            }
        };
        to.checked_sub(from + 1)
            .and_then(|off| u8::try_from(off).ok())
            .ok_or_else(|| SeccompError { reason: format!("jump from {from} to {to} does not fit") })
    };
    for p in &pending {
        prog[p.at].jt = resolve(p.at, p.jt)?;
        prog[p.at].jf = resolve(p.at, p.jf)?;
    }
    Ok(vec![prog])
}

/// Installs one filter on the calling thread.
///
/// This does not set `no_new_privs`: BuildKit leaves it off, so the filter is installed
/// while the process still holds CAP_SYS_ADMIN (see seccomp(2), "the caller must have
/// CAP_SYS_ADMIN ... or no_new_privs").
pub(crate) fn install(program: &Program) -> std::io::Result<()> {
    let len = u16::try_from(program.len()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog { len, filter: program.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `prog` points into `program`, which outlives the call; the kernel copies the
    // filter before returning.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog)
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic-BPF seccomp filter on one `seccomp_data` (just enough of the
    /// instruction set for what `default_profile` emits).
    fn run(prog: &Program, arch: u32, nr: u32, arg0: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[16..24].copy_from_slice(&arg0.to_le_bytes());
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            let k = i.k;
            let jump = |taken: bool| pc + 1 + if taken { i.jt as usize } else { i.jf as usize };
            pc = match i.code {
                LD_W_ABS => {
                    let o = k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                    pc + 1
                }
                JEQ_K => jump(acc == k),
                JGE_K => jump(acc >= k),
                JSET_K => jump(acc & k != 0),
                RET_K => return k,
                other => panic!("unexpected instruction {other:#x}"),
            };
        }
    }

    fn expected(nr: u32, arg0: u64) -> u32 {
        let s = &table::SPECIAL;
        let allow = RET_ALLOW;
        let deny = RET_ERRNO | libc::EPERM as u32;
        match i64::from(nr) {
            n if n == s.socket => {
                if arg0 as u32 == AF_VSOCK as u32 {
                    deny
                } else {
                    allow
                }
            }
            n if n == s.personality => {
                if PERSONALITIES.contains(&u64::from(arg0 as u32)) {
                    allow
                } else {
                    deny
                }
            }
            n if n == s.clone => {
                if arg0 & CLONE_NAMESPACE_FLAGS != 0 {
                    deny
                } else {
                    allow
                }
            }
            n if n == s.clone3 => RET_ERRNO | libc::ENOSYS as u32,
            n if table::ALLOW.iter().any(|(_, a)| *a == n) => allow,
            _ => deny,
        }
    }

    #[test]
    fn the_filter_decides_every_syscall_like_the_table() {
        let progs = default_profile().unwrap();
        assert_eq!(progs.len(), 1);
        let prog = &progs[0];
        assert!(prog.len() < 100, "{} instructions", prog.len());
        let args = [
            0u64,
            8,
            40,
            0x2_0000,
            0xffff_ffff,
            0x1_0000_0000,
            0x0002_0000_0000_0000 | 0x100,
            0x1000_0000,
            0x4000_0000 | 17,
        ];
        let numbers = (0..1200u32).chain([0x4000_0000, 0x4000_0000 | 1, 0x4000_0000 | 56, u32::MAX]);
        for nr in numbers {
            for arg in args {
                assert_eq!(run(prog, AUDIT_ARCH, nr, arg), expected(nr, arg), "nr {nr} arg {arg:#x}");
            }
        }
        assert_eq!(run(prog, 0x4000_0003, 0, 0), RET_KILL_PROCESS, "a foreign architecture is killed");
    }

    #[test]
    fn profile_blocks_the_usual_suspects() {
        let allowed: Vec<&str> = table::ALLOW.iter().map(|(n, _)| *n).collect();
        for blocked in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "init_module",
            "bpf",
            "reboot",
            "swapon",
            "io_uring_setup",
        ] {
            assert!(!allowed.contains(&blocked), "{blocked} must not be allowed");
        }
        for needed in ["execve", "read", "setuid", "capset", "prctl", "wait4", "chroot"] {
            assert!(allowed.contains(&needed), "{needed} must be allowed");
        }
    }
}
