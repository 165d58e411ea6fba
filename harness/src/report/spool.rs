//! Reports written while the sites finish. As each site is graded, its
//! part of every format (JSON element, JUnit suites, metric samples, HTML and
//! Markdown sections) is scrubbed and appended to a spool file; the caller
//! then keeps only the site's slim report (its grade). [`Spool::finish`]
//! writes each format's file from its head, rendered from the slim report,
//! and the spooled parts, so a run over a thousand sites never holds their
//! results or a whole rendering in memory. The files equal what
//! [`Report::output`] renders from the full report.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::budget::{Room, Seat};

use probes::model::Status;
use probes::secret::{scrub, Scope};

use super::{html, json, junit, markdown, metrics, nagios, Format, Report, SiteReport};

/// Appended parts of one format, with where each site's part starts.
struct Part {
    file: BufWriter<File>,
    at: u64,
    /// (worst-first key, offset, length) of each site's part.
    index: Vec<(Key, u64, u64)>,
}

/// Worst status first, then failed before passed, then by name: the order
/// of [`Report::sites_worst_first`].
type Key = (std::cmp::Reverse<Status>, bool, String);

impl Part {
    fn new(dir: &Path, name: &str) -> io::Result<Part> {
        Ok(Part {
            file: BufWriter::new(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(dir.join(name))?,
            ),
            at: 0,
            index: Vec::new(),
        })
    }

    fn add(&mut self, key: Key, text: &str) -> io::Result<()> {
        self.file.write_all(text.as_bytes())?;
        let len = text.len() as u64;
        self.index.push((key, self.at, len));
        self.at += len;
        Ok(())
    }

    /// The parts in the order they came, or worst first, into `out`;
    /// `sep` between two parts.
    fn copy_to(mut self, out: &mut impl Write, worst_first: bool, sep: &str) -> io::Result<()> {
        self.file.flush()?;
        let mut f = self.file.into_inner().map_err(|e| e.into_error())?;
        if worst_first {
            self.index.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut buf = Vec::new();
        for (i, (_, off, len)) in self.index.iter().enumerate() {
            if i > 0 {
                out.write_all(sep.as_bytes())?;
            }
            f.seek(SeekFrom::Start(*off))?;
            buf.clear();
            (&mut f).take(*len).read_to_end(&mut buf)?;
            out.write_all(&buf)?;
        }
        Ok(())
    }

    /// The parts' lines worst first, read until they hold `bytes` bytes
    /// (newlines counted) or there are no more: the prefix a capped
    /// output needs, whatever the number of sites.
    fn lines_worst_first(mut self, bytes: usize) -> io::Result<Vec<String>> {
        self.file.flush()?;
        let mut f = self.file.into_inner().map_err(|e| e.into_error())?;
        self.index.sort_by(|a, b| a.0.cmp(&b.0));
        let (mut lines, mut held) = (Vec::new(), 0);
        let mut buf = String::new();
        for (_, off, len) in &self.index {
            if held >= bytes {
                break;
            }
            f.seek(SeekFrom::Start(*off))?;
            buf.clear();
            (&mut f).take(*len).read_to_string(&mut buf)?;
            for line in buf.lines() {
                if held >= bytes {
                    break;
                }
                held += line.len() + 1;
                lines.push(line.to_string());
            }
        }
        Ok(lines)
    }
}

/// One site's part of every format, scrubbed. Rendering is most of a
/// report's cost and needs only the report's header and the site, so sites
/// render in parallel ([`SitePart::render`]) and are appended in order.
pub struct SitePart {
    key: Key,
    json: String,
    /// Suites numbered from 0 ([`junit::site_suites`]).
    junit: String,
    junit_suites: usize,
    metrics: Vec<String>,
    html: String,
    markdown: String,
    /// The site's Nagios long-output lines, each ended by a newline.
    nagios: String,
    nagios_lines: usize,
}

impl SitePart {
    /// `r`'s header (guideline, requirements) is what the sections use.
    pub fn render(r: &Report, s: &SiteReport) -> SitePart {
        let (suites, n) = junit::site_suites(s);
        let lines = nagios::site_lines(s);
        let mut long = String::new();
        for l in &lines {
            long.push_str(l);
            long.push('\n');
        }
        SitePart {
            key: (
                std::cmp::Reverse(s.grade.status),
                s.grade.passed,
                s.run.site.clone(),
            ),
            json: scrub(&json::site_chunk(s)),
            junit: scrub(&suites),
            junit_suites: n,
            metrics: metrics::site_chunks(s).iter().map(|l| scrub(l)).collect(),
            html: scrub(&html::section(r, s)),
            markdown: scrub(&markdown::section(r, s)),
            nagios: scrub(&long),
            nagios_lines: lines.len(),
        }
    }
}

/// The spool of one harness run.
pub struct Spool {
    _dir: tempfile::TempDir,
    json: Part,
    junit: Part,
    junit_suites: usize,
    metrics: Vec<Part>,
    html: Part,
    markdown: Part,
    nagios: Part,
    nagios_lines: usize,
}

impl Spool {
    pub fn new() -> io::Result<Spool> {
        let dir = tempfile::Builder::new()
            .prefix("fedprobe-spool-")
            .tempdir()?;
        let families = metrics::family_count();
        Ok(Spool {
            json: Part::new(dir.path(), "json")?,
            junit: Part::new(dir.path(), "junit")?,
            junit_suites: 0,
            metrics: (0..families)
                .map(|i| Part::new(dir.path(), &format!("metrics-{i}")))
                .collect::<io::Result<_>>()?,
            html: Part::new(dir.path(), "html")?,
            markdown: Part::new(dir.path(), "md")?,
            nagios: Part::new(dir.path(), "nagios")?,
            nagios_lines: 0,
            _dir: dir,
        })
    }

    /// Append one site's rendered part: sites are appended in the order
    /// they are to appear (JSON, JUnit and metrics keep it).
    pub fn append(&mut self, p: SitePart) -> io::Result<()> {
        self.json.add(p.key.clone(), &p.json)?;
        let suites = junit::shift_ids(&p.junit, self.junit_suites);
        self.junit_suites += p.junit_suites;
        self.junit.add(p.key.clone(), &suites)?;
        for (part, lines) in self.metrics.iter_mut().zip(&p.metrics) {
            part.add(p.key.clone(), lines)?;
        }
        self.html.add(p.key.clone(), &p.html)?;
        self.markdown.add(p.key.clone(), &p.markdown)?;
        self.nagios.add(p.key, &p.nagios)?;
        self.nagios_lines += p.nagios_lines;
        Ok(())
    }

    /// Write every format into `dir` from `r` (the slim report of every
    /// spooled site, in the order spooled) and the spooled parts.
    pub fn finish(self, r: &Report, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let path = |f: Format| dir.join(f.file_name());
        let mut out = Vec::new();

        // Bounded (16 KB): the first line from the grades, then only as
        // many spooled lines as can be shown.
        let long = self
            .nagios
            .lines_worst_first(probes::render::nagios::MAX_OUTPUT)?;
        let text = probes::render::nagios::cap_of(nagios::first_line(r), &long, self.nagios_lines);
        std::fs::write(path(Format::Nagios), scrub(&text))?;
        out.push(path(Format::Nagios));

        let head = scrub(&json::head(r));
        let mut w = BufWriter::new(File::create(path(Format::Json))?);
        match json::splice(&head) {
            Some((before, after)) if !self.json.index.is_empty() => {
                w.write_all(before.as_bytes())?;
                w.write_all(json::OPEN_SITES.as_bytes())?;
                self.json.copy_to(&mut w, false, ",\n")?;
                w.write_all(after.as_bytes())?;
            }
            _ => w.write_all(head.as_bytes())?,
        }
        w.flush()?;
        out.push(path(Format::Json));

        let mut w = BufWriter::new(File::create(path(Format::Junit))?);
        if self.junit_suites == 0 {
            w.write_all(scrub(&junit::render(r)).as_bytes())?;
        } else {
            w.write_all(junit::OPEN.as_bytes())?;
            self.junit.copy_to(&mut w, false, "")?;
            w.write_all(junit::CLOSE.as_bytes())?;
        }
        w.flush()?;
        out.push(path(Format::Junit));

        let mut w = BufWriter::new(File::create(path(Format::Openmetrics))?);
        for (i, part) in self.metrics.into_iter().enumerate() {
            if part.index.iter().any(|(_, _, len)| *len > 0) {
                w.write_all(metrics::head_of(i).as_bytes())?;
                part.copy_to(&mut w, false, "")?;
            }
        }
        w.write_all(metrics::EOF.as_bytes())?;
        w.flush()?;
        out.push(path(Format::Openmetrics));

        let mut w = BufWriter::new(File::create(path(Format::Markdown))?);
        w.write_all(scrub(&markdown::top(r)).as_bytes())?;
        self.markdown.copy_to(&mut w, true, "")?;
        w.flush()?;
        out.push(path(Format::Markdown));

        let mut w = BufWriter::new(File::create(path(Format::Html))?);
        w.write_all(scrub(&html::top(r)).as_bytes())?;
        self.html.copy_to(&mut w, true, "")?;
        w.write_all(html::TAIL.as_bytes())?;
        w.flush()?;
        out.push(path(Format::Html));
        Ok(out)
    }
}

type Rendering = tokio::sync::oneshot::Receiver<Result<SitePart, String>>;

/// Threads that render sites, made once per run, a core's worth. Not
/// Tokio's blocking pool: it makes a thread whenever none is idle at that
/// instant (up to seven threads for two renderings at a time at 1,000
/// sites). Not rayon: its idle workers spin, and this run is CPU-bound;
/// std's channel and threads are all it takes.
struct Renderers {
    orders: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Renderers {
    /// `None` when no thread could be made.
    fn start(threads: usize) -> Option<Renderers> {
        let (orders, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut made = 0;
        for _ in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(RENDER_THREAD.into())
                .spawn(move || loop {
                    // The lock is held only to take the next order.
                    let next = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match next {
                        Ok(order) => order(),
                        Err(_) => return, // the writer is gone
                    }
                });
            made += spawned.is_ok() as usize;
        }
        (made > 0).then_some(Renderers { orders })
    }

    /// Run `f` on one of the threads; gives it back if none is left.
    fn run<F: FnOnce() + Send + 'static>(&self, f: F) -> Result<(), Box<dyn FnOnce() + Send>> {
        self.orders.send(Box::new(f)).map_err(|e| e.0)
    }
}

const RENDER_THREAD: &str = "fedprobe-render";

/// `f`'s value, or its panic as an error naming it.
fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|p| format!("panicked: {}", probes::runner::panic_message(p)))
}

/// Sites spooled as they are graded, rendered off the threads that run the
/// probes, a core's worth at a time, and appended in the order added: over
/// a thousand sites that finish within a second or two of each other, one
/// thread rendering them was seconds after the last probe.
pub struct Writer {
    header: Arc<Report>,
    renderers: Option<Renderers>,
    /// Graded sites held at once, rendering or waiting to: two per core.
    room: Room,
    parts: mpsc::UnboundedSender<(SiteReport, Rendering)>,
    done: tokio::task::JoinHandle<(Vec<SiteReport>, Result<Spool, String>)>,
}

impl Writer {
    /// Within a Tokio runtime. `r`'s header is what the sections use.
    pub fn start(r: &Report, mut spool: Result<Spool, String>) -> Writer {
        let (parts, mut rx) = mpsc::unbounded_channel::<(SiteReport, Rendering)>();
        let done = tokio::spawn(async move {
            let mut sites = Vec::new();
            while let Some((slim, part)) = rx.recv().await {
                let part = part
                    .await
                    .unwrap_or_else(|_| Err("it ended without a result".into()))
                    .map_err(|e| format!("rendering {}: {e}", slim.run.site));
                if let Ok(sp) = &mut spool {
                    if let Err(e) = part.and_then(|p| sp.append(p).map_err(|e| e.to_string())) {
                        spool = Err(format!("report spool: {e}"));
                    }
                }
                sites.push(slim);
            }
            (sites, spool)
        });
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Writer {
            // Not a clone of `r`: its `previous` may be a whole earlier report.
            header: Arc::new(Report {
                guideline_id: r.guideline_id.clone(),
                guideline_title: r.guideline_title.clone(),
                requirements: r.requirements.clone(),
                started_at: r.started_at,
                duration: r.duration,
                sites: Vec::new(),
                previous: None,
            }),
            renderers: Renderers::start(cores),
            room: Room::new(2 * cores),
            parts,
            done,
        }
    }

    /// Where a site waits for its turn to be added ([`Writer::add`]).
    pub fn room(&self) -> &Room {
        &self.room
    }

    /// Spool a graded site (after those added before it); its `seat` in
    /// [`Writer::room`] is given back once it is rendered, and the scope of
    /// its `secrets` closed: every text of the site is then scrubbed, and
    /// what is kept of it (the slim report) holds no message of its checks.
    pub fn add(&self, site: SiteReport, seat: Seat, secrets: Scope) {
        let slim = site.slim_copy();
        let header = self.header.clone();
        let (reply, rendered) = tokio::sync::oneshot::channel();
        let render = move || {
            let part = caught(|| SitePart::render(&header, &site));
            drop(site);
            secrets.close();
            drop(seat);
            let _ = reply.send(part);
        };
        // No render thread (none could be made): the blocking pool.
        let left = match &self.renderers {
            Some(r) => r.run(render).err(),
            None => Some(Box::new(render) as Box<dyn FnOnce() + Send>),
        };
        if let Some(render) = left {
            tokio::task::spawn_blocking(render);
        }
        let _ = self.parts.send((slim, rendered));
    }

    /// Every site's slim report, in the order added, and the spool.
    pub async fn finish(self) -> (Vec<SiteReport>, Result<Spool, String>) {
        drop(self.parts);
        self.done
            .await
            .unwrap_or_else(|e| (Vec::new(), Err(format!("report spool: {e}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rendering runs on the writer's own threads, never more of them
    /// than asked for, so their allocator pages are made once.
    #[test]
    fn renderings_run_on_the_writers_own_threads() {
        let r = Renderers::start(2).expect("threads");
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..40 {
            let tx = tx.clone();
            r.run(move || {
                std::thread::sleep(std::time::Duration::from_millis(1));
                let t = std::thread::current();
                let _ = tx.send((t.id(), t.name().map(str::to_string)));
            })
            .ok()
            .expect("a thread takes it");
        }
        drop(tx);
        let seen: Vec<_> = rx.iter().collect();
        assert_eq!(seen.len(), 40);
        let ids: std::collections::HashSet<_> = seen.iter().map(|(id, _)| *id).collect();
        assert!(ids.len() <= 2, "{} threads", ids.len());
        assert!(seen
            .iter()
            .all(|(_, n)| n.as_deref() == Some(RENDER_THREAD)));
    }

    #[test]
    fn a_rendering_that_panics_is_an_error_naming_it() {
        assert_eq!(caught(|| 7), Ok(7));
        let e = caught(|| -> u8 { panic!("no {} here", "section") }).unwrap_err();
        assert_eq!(e, "panicked: no section here");
    }
}
