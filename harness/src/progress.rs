//! Progress on stderr, fed by events (a probe starts, a stage starts or
//! ends, a probe finishes): a bar per site on a terminal (indicatif), plain
//! lines otherwise, nothing when quiet. Nothing polls a probe.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use probes::model::Status;
use probes::record::{StageEvent, StageSink};

/// Sites shown as bars; beyond this a single overall bar.
const MAX_BARS: usize = 20;

#[derive(Default)]
struct SiteState {
    total: usize,
    done: usize,
    /// Running probes and the stage each is in.
    running: BTreeMap<String, Option<String>>,
    worst: Option<Status>,
    bar: Option<ProgressBar>,
}

enum Mode {
    Quiet,
    Lines,
    Bars(MultiProgress),
}

pub struct Progress {
    mode: Mode,
    sites: Mutex<BTreeMap<String, SiteState>>,
    /// The single bar once there are more sites than [`MAX_BARS`].
    overall: Mutex<Option<ProgressBar>>,
}

impl Progress {
    pub fn auto(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            sites: Mutex::default(),
            overall: Mutex::default(),
        }
    }

    pub fn quiet() -> Progress {
        Progress::auto(true)
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template("{prefix:30.bold} [{bar:20}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-")
    }

    pub fn site(&self, site: &str, jobs: usize) {
        let Ok(mut sites) = self.sites.lock() else {
            return;
        };
        let n = sites.len();
        let st = sites.entry(site.to_string()).or_default();
        st.total += jobs;
        let Mode::Bars(multi) = &self.mode else {
            return;
        };
        if n < MAX_BARS {
            let bar = st.bar.get_or_insert_with(|| {
                let b = multi.add(ProgressBar::new(0));
                b.set_style(Progress::style());
                b.set_prefix(site.to_string());
                b.enable_steady_tick(Duration::from_millis(500));
                b
            });
            bar.set_length(st.total as u64);
        } else {
            // Past MAX_BARS sites: one overall bar instead.
            for s in sites.values_mut() {
                if let Some(b) = s.bar.take() {
                    multi.remove(&b);
                }
            }
            let total: usize = sites.values().map(|s| s.total).sum();
            if let Ok(mut o) = self.overall.lock() {
                let bar = o.get_or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(0));
                    b.set_style(Progress::style());
                    b.enable_steady_tick(Duration::from_millis(500));
                    b
                });
                bar.set_prefix(format!("{} sites", sites.len()));
                bar.set_length(total as u64);
            }
        }
    }

    pub fn started(&self, site: &str, what: &str) {
        self.update(site, |st| {
            st.running.insert(what.to_string(), None);
        });
        if let Mode::Lines = self.mode {
            eprintln!("fedprobe: {site}: {what} started");
        }
    }

    /// Where a probe's stage events go.
    pub fn sink(self: &Arc<Self>, site: &str, what: &str) -> StageSink {
        let (me, site, what) = (self.clone(), site.to_string(), what.to_string());
        Arc::new(move |ev: StageEvent| {
            let stage = match ev {
                StageEvent::Started(c) => Some(format!("{} {}", c.id, c.name)),
                StageEvent::Finished(_) => None,
            };
            me.update(&site, |st| {
                st.running.insert(what.clone(), stage.clone());
            });
        })
    }

    pub fn finished(&self, site: &str, what: &str, status: Status) {
        self.update(site, |st| {
            st.running.remove(what);
            st.done += 1;
            st.worst = Some(st.worst.map_or(status, |w| w.max(status)));
        });
        if let Ok(o) = self.overall.lock() {
            if let Some(b) = o.as_ref() {
                b.inc(1);
            }
        }
        if let Mode::Lines = self.mode {
            eprintln!("fedprobe: {site}: {what} {status}");
        }
    }

    pub fn finish(&self) {
        if let Ok(sites) = self.sites.lock() {
            for st in sites.values() {
                if let Some(b) = &st.bar {
                    b.finish();
                }
            }
            if let Ok(o) = self.overall.lock() {
                if let Some(b) = o.as_ref() {
                    let bad = sites
                        .values()
                        .filter(|s| s.worst.is_some_and(|w| w != Status::Ok))
                        .count();
                    b.finish_with_message(format!("{bad} site(s) not OK"));
                }
            }
        }
    }

    fn update(&self, site: &str, f: impl FnOnce(&mut SiteState)) {
        let Ok(mut sites) = self.sites.lock() else {
            return;
        };
        let Some(st) = sites.get_mut(site) else {
            return;
        };
        f(st);
        if let Some(b) = &st.bar {
            b.set_position(st.done as u64);
            b.set_message(label(st));
        }
    }
}

fn label(st: &SiteState) -> String {
    if !st.running.is_empty() {
        let now: Vec<String> = st
            .running
            .iter()
            .map(|(name, stage)| match stage {
                Some(s) => format!("{name} {s}"),
                None => name.clone(),
            })
            .collect();
        format!("running {}", now.join(", "))
    } else if st.done == st.total {
        st.worst.map(|w| w.to_string()).unwrap_or_default()
    } else {
        "waiting".into()
    }
}
