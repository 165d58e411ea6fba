//! Progress on stderr: a bar per site (redrawn in place) on a terminal,
//! plain lines otherwise, nothing when quiet.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use probes::model::Status;

use crate::catalog::StageSlot;

/// Sites shown as bars; beyond this a single overall bar.
const MAX_BARS: usize = 20;

#[derive(Default)]
struct SiteState {
    total: usize,
    done: usize,
    running: Vec<(String, StageSlot)>,
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

    /// A probe starts; the slot it returns shows its current stage.
    pub fn started_probe(&self, site: &str, what: &str) -> StageSlot {
        let slot = StageSlot::default();
        self.start(site, what, slot.clone());
        slot
    }

    pub fn started(&self, site: &str, what: &str) {
        self.start(site, what, StageSlot::default());
    }

    /// Redraw the bars (stages move on between events).
    pub fn tick(&self) {
        if self.mode == Mode::Bars {
            if let Ok(mut s) = self.state.lock() {
                self.draw(&mut s);
            }
        }
    }

    pub fn is_bars(&self) -> bool {
        self.mode == Mode::Bars
    }

    fn start(&self, site: &str, what: &str, slot: StageSlot) {
        let Ok(mut s) = self.state.lock() else { return };
        if let Some(st) = s.0.get_mut(site) {
            st.running.push((what.to_string(), slot));
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
            st.running.retain(|r| r.0 != what);
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
            // Never wrap: a wrapped line would break the redraw in place.
            let _ = writeln!(err, "\x1b[2K{}", probes::text::one_line(l, 150));
        }
        let _ = err.flush();
        *drawn = lines.len();
    }
}

fn label(st: &SiteState) -> String {
    if !st.running.is_empty() {
        let now: Vec<String> = st
            .running
            .iter()
            .map(|(name, slot)| {
                let stage = slot
                    .lock()
                    .ok()
                    .and_then(|r| r.as_ref().and_then(|r| r.current_stage()));
                match stage {
                    Some((c, d)) => format!("{name} {} {} {:.0}s", c.id, c.name, d.as_secs_f64()),
                    None => name.clone(),
                }
            })
            .collect();
        format!("running {}", now.join(", "))
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
