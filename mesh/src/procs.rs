//! Child processes of the test/demo: each logs to its own file, and none outlives its parent.
//!
//! Three ways a run ends, three guards: a normal end or a panic drops [`Procs`] (kill, and on panic print the
//! log tails, since a failing test's only evidence is in them); Ctrl-C/SIGTERM runs a signal handler that
//! kills every registered child; and if the parent is killed outright, `PR_SET_PDEATHSIG` makes the kernel
//! kill the children. Children are never detached into sub-scripts, which could take them down when they exit.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Lines of each log printed when something fails.
const TAIL_LINES: usize = 30;

/// Pids the signal handler kills; a fixed table of atomics because a handler may not lock or allocate.
static PIDS: [AtomicI32; 256] = [const { AtomicI32::new(0) }; 256];

/// One running child.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

/// The children of one mesh and the temp directory holding their configs and logs.
pub struct Procs {
    dir: PathBuf,
    list: Vec<Proc>,
}

impl Procs {
    /// Creates a fresh directory under the system temp dir for configs and logs.
    pub fn new(label: &str) -> Result<Procs> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        install_signal_handler();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("canary-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Procs { dir, list: Vec::new() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts `cmd` with stdout and stderr appended to `<dir>/<name>.log` (appended so a restarted Envoy keeps
    /// its predecessor's lines).
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<&Proc> {
        let log = self.dir.join(format!("{name}.log"));
        let mut file = OpenOptions::new().create(true).append(true).open(&log)?;
        writeln!(file, "----- {} {:?}", name, cmd)?;
        cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("starting {name}: {cmd:?}"))?;
        register(child.id() as i32);
        self.list.push(Proc { name: name.to_string(), log, child });
        Ok(self.list.last().expect("just pushed"))
    }

    /// Whether `name` is still running (false once it exited).
    pub fn running(&mut self, name: &str) -> bool {
        self.list.iter_mut().any(|p| p.name == name && matches!(p.child.try_wait(), Ok(None)))
    }

    /// The process id of `name` while it runs (e.g. to read its memory from `/proc`).
    pub fn pid(&mut self, name: &str) -> Option<u32> {
        self.list
            .iter_mut()
            .filter(|p| p.name == name)
            .find_map(|p| matches!(p.child.try_wait(), Ok(None)).then(|| p.child.id()))
    }

    /// Stops every child whose name satisfies `which`: SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self, which: impl Fn(&str) -> bool) {
        let (stopping, kept): (Vec<Proc>, Vec<Proc>) = self.list.drain(..).partition(|p| which(&p.name));
        self.list = kept;
        for p in &stopping {
            // SAFETY: plain kill(2) on our own child's pid, which is not reaped yet so cannot be reused.
            unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for mut p in stopping {
            while matches!(p.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
            unregister(p.child.id() as i32);
        }
    }

    /// The last lines of `name`'s log.
    pub fn tail(&self, name: &str) -> String {
        self.list.iter().find(|p| p.name == name).map(|p| tail(&p.log, TAIL_LINES)).unwrap_or_default()
    }

    /// The last lines of every log in the directory (stopped processes included), for a failure report.
    pub fn all_tails(&self) -> String {
        let mut logs: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension() == Some("log".as_ref())))
            .map(Iterator::collect)
            .unwrap_or_default();
        logs.sort();
        logs.iter().map(|log| format!("===== {}\n{}", log.display(), tail(log, TAIL_LINES))).collect()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop(|_| true);
        if thread::panicking() {
            eprintln!("mesh logs kept in {}; their tails:\n{}", self.dir.display(), self.all_tails());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The last `lines` lines of a file (reads at most the final 64 KiB).
pub fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<String> = text.lines().map(shorten).collect();
    all[all.len().saturating_sub(lines)..].join("\n") + "\n"
}

/// Cuts a very long log line (Envoy lists hundreds of names on one line) so a failure report stays readable.
fn shorten(line: &str) -> String {
    const MAX: usize = 400;
    match line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

/// Records a pid for the signal handler (the first free slot; past 256 children only Drop and PDEATHSIG act).
fn register(pid: i32) {
    let _ = PIDS.iter().any(|s| s.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst).is_ok());
}

fn unregister(pid: i32) {
    for slot in &PIDS {
        let _ = slot.compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    for slot in &PIDS {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) and _exit(2) are async-signal-safe.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    unsafe { libc::_exit(128 + signal) };
}

/// Ctrl-C or a SIGTERM to the test/demo kills all children before exiting.
fn install_signal_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only calls async-signal-safe functions and reads atomics.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
    });
}
