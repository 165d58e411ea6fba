//! Progress on stderr: a bar per site (redrawn in place) on a terminal,
//! plain lines otherwise, nothing when quiet.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use probes::model::Status;

/// Sites shown as bars; beyond this a single overall bar.
const MAX_BARS: usize = 20;

#[derive(Default)]
struct SiteState {
    total: usize,
    done: usize,
    running: Vec<String>,
    worst: Option<Status>,
}

pub struct Progress {
    mode: Mode,
    state: Mutex<(BTreeMap<String, SiteState>, usize)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Lines,
    Bars,
}

impl Progress {
    pub fn auto(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            state: Mutex::new((BTreeMap::new(), 0)),
        }
    }

    pub fn quiet() -> Progress {
        Progress::auto(true)
    }

    pub fn site(&self, site: &str, jobs: usize) {
        if let Ok(mut s) = self.state.lock() {
            s.0.entry(site.to_string()).or_default().total += jobs;
        }
    }

    pub fn started(&self, site: &str, what: &str) {
        let Ok(mut s) = self.state.lock() else { return };
        if let Some(st) = s.0.get_mut(site) {
            st.running.push(what.to_string());
        }
        match self.mode {
            Mode::Lines => eprintln!("fedprobe: {site}: {what} started"),
            Mode::Bars => self.draw(&mut s),
            Mode::Quiet => {}
        }
    }

    pub fn finished(&self, site: &str, what: &str, status: Status) {
        let Ok(mut s) = self.state.lock() else { return };
        if let Some(st) = s.0.get_mut(site) {
            st.running.retain(|r| r != what);
            st.done += 1;
            st.worst = Some(st.worst.map_or(status, |w| w.max(status)));
        }
        match self.mode {
            Mode::Lines => eprintln!("fedprobe: {site}: {what} {status}"),
            Mode::Bars => self.draw(&mut s),
            Mode::Quiet => {}
        }
    }

    pub fn finish(&self) {
        if self.mode == Mode::Bars {
            if let Ok(mut s) = self.state.lock() {
                self.draw(&mut s);
            }
        }
    }

    fn draw(&self, s: &mut (BTreeMap<String, SiteState>, usize)) {
        let (sites, drawn) = s;
        let mut lines = Vec::new();
        if sites.len() <= MAX_BARS {
            let w = sites.keys().map(|k| k.len()).max().unwrap_or(4).min(30);
            for (name, st) in sites.iter() {
                lines.push(format!(
                    "{name:w$.w$} {} {}/{} {}",
                    bar(st.done, st.total),
                    st.done,
                    st.total,
                    label(st)
                ));
            }
        } else {
            let total: usize = sites.values().map(|s| s.total).sum();
            let done: usize = sites.values().map(|s| s.done).sum();
            let running: usize = sites.values().map(|s| s.running.len()).sum();
            let bad = sites
                .values()
                .filter(|s| s.worst.is_some_and(|w| w != Status::Ok))
                .count();
            lines.push(format!(
                "{} sites {} {done}/{total} checks, {running} running, {bad} site(s) not OK",
                sites.len(),
                bar(done, total)
            ));
        }
        let mut err = std::io::stderr().lock();
        if *drawn > 0 {
            let _ = write!(err, "\x1b[{}A", *drawn);
        }
        for l in &lines {
            let _ = writeln!(err, "\x1b[2K{l}");
        }
        let _ = err.flush();
        *drawn = lines.len();
    }
}

fn label(st: &SiteState) -> String {
    if !st.running.is_empty() {
        format!("running {}", st.running.join(", "))
    } else if st.done == st.total {
        st.worst.map(|w| w.to_string()).unwrap_or_default()
    } else {
        "waiting".into()
    }
}

fn bar(done: usize, total: usize) -> String {
    const W: usize = 20;
    let filled = (done * W).checked_div(total).unwrap_or(W).min(W);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(W - filled))
}
