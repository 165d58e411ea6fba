//! Local files the monitor names: credentials, keys, configuration, GLUE
//! documents, image lists, accounting spools, CA bundles. A wrong path must
//! end as an error naming it, not as the monitoring host's memory
//! (`/dev/zero`, a log of gigabytes), nor as a harness worker held for ever
//! (a FIFO nobody writes, a hung mount).

use std::io::{self, Read};
use std::path::Path;

/// Credentials, keys, configuration: far above any real one.
pub const SMALL: u64 = 1 << 20;
/// Documents (GLUE, image lists, accounting messages, CA bundles): as much
/// as a site's answer may hold.
pub const DOCUMENT: u64 = 64 << 20;

/// The bytes of `path`, at most `max`; more is an error (`FileTooLarge`)
/// saying so, before more than `max + 1` bytes are held.
pub fn read(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    blocking(|| read_now(path, max))
}

/// As [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read(path, max)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

fn read_now(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    // A regular file's length sizes the buffer; a pipe or device says 0.
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0).min(max);
    let mut buf = Vec::with_capacity(usize::try_from(hint).unwrap_or(0).saturating_add(1));
    file.take(max.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {} (is it the file meant?)", size(max)),
        ));
    }
    Ok(buf)
}

fn size(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// Run blocking file work (a read, a directory walk) so that it holds no worker of a multi-threaded
/// runtime (a harness): the worker's other tasks move to a new thread, and
/// the runner's deadline still ends the run when the read never returns.
/// A single-threaded runtime (a probe binary) has its watchdog instead
/// (`cli`), and `block_in_place` would panic there.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_up_to_the_bound_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read(&p, 10).unwrap(), b"0123456789");
        assert_eq!(read_to_string(&p, 64).unwrap(), "0123456789");
    }

    #[test]
    fn a_larger_file_is_refused_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let e = read(&p, 9).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("larger than 9 bytes"), "{e}");
    }

    #[test]
    fn an_endless_device_is_refused_at_the_bound() {
        let e = read(Path::new("/dev/zero"), SMALL).unwrap_err();
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
    }

    #[test]
    fn a_missing_file_is_the_os_error() {
        let e = read(Path::new("/nonexistent/fedprobe"), SMALL).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn text_that_is_not_utf8_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_to_string(&p, 64).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_blocked_on_every_worker_leave_the_runtime_running() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        // A FIFO nobody writes: each read blocks in open(2), one per worker.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let done = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (f, done) = (fifo.clone(), done.clone());
                tokio::spawn(async move {
                    let r = read(&f, SMALL);
                    done.fetch_add(1, Ordering::SeqCst);
                    r
                })
            })
            .collect();
        // The readers are let go after 2 s by a thread outside the runtime:
        // a writer comes and goes (read-write, so its own open does not
        // wait) until both have read an empty file.
        let release = {
            let (f, done) = (fifo.clone(), done.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(2));
                for _ in 0..100 {
                    if done.load(Ordering::SeqCst) == 2 {
                        break;
                    }
                    let w = std::fs::OpenOptions::new().read(true).write(true).open(&f);
                    std::thread::sleep(Duration::from_millis(20));
                    drop(w);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        // Not the runtime's sleep: its timer waits for a worker too.
        std::thread::sleep(Duration::from_millis(100));
        // Meanwhile another task runs at once: the workers were handed off.
        let t0 = Instant::now();
        assert_eq!(tokio::spawn(async { 42 }).await.unwrap(), 42);
        let waited = t0.elapsed();
        for r in readers {
            assert_eq!(r.await.unwrap().unwrap(), b"");
        }
        release.join().unwrap();
        assert!(
            waited < Duration::from_secs(1),
            "waited {waited:?} for a worker"
        );
    }
}
