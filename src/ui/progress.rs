//! Draws the engine's [`Event`]s on stderr: [`Bars`] (indicatif) on a
//! terminal, [`Lines`] (one timestamped line per event) everywhere else.
//!
//! Both are [`Sink`]s and take any order of events without panicking.
//! Every text that came from an event is made single-line first: control
//! characters (a newline in a remote error, an escape sequence in a host's
//! stderr) are shown escaped, never sent to the terminal.
//!
//! [`Bars`] draws live only while a phase or a rollback runs, and clears its
//! bars when the phase ends; what stays on screen are plain lines printed
//! above the bars. Between phases nothing is live, so a prompt (prompts come
//! only between steps) never fights with a redraw.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::events::{Event, Sink};

/// The renderer for this run: [`Bars`] when `plain` is false, stderr is a
/// terminal and `TERM` is set and not `dumb`; [`Lines`] on stderr otherwise.
pub fn renderer(plain: bool) -> Box<dyn Sink> {
    let term_ok = std::env::var_os("TERM").is_some_and(|t| !t.is_empty() && t != "dumb");
    if !plain && term_ok && std::io::stderr().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines::new())
    }
}

/// `HH:MM:SS.mmm` of `t` in UTC (the clock of [`Lines`]).
pub fn utc_hms_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Seconds with two decimals: `0.41 s`.
fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// `text` trimmed and on one line: newlines and other control characters are
/// escaped (`\n`, `\u{1b}`), tabs become spaces.
fn one_line(text: &str) -> Cow<'_, str> {
    let t = text.trim();
    if !t.chars().any(char::is_control) {
        return Cow::Borrowed(t);
    }
    let mut out = String::with_capacity(t.len() + 8);
    for c in t.chars() {
        match c {
            '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn phase_tag(index: usize, total: Option<usize>) -> String {
    match total {
        Some(t) => format!("[{index}/{t}]"),
        None => format!("[{index}/?]"),
    }
}

/// The text of one event for [`Lines`], without the timestamp. `total` is
/// the phase count last announced, for `PhaseDone` (which does not carry it).
///
/// Step lines are `  step N STATUS host  what`, with STATUS one of `start`,
/// `ok`, `FAILED`, `skip` padded to six columns; undo lines are the same
/// behind `UNDO `, so `grep UNDO` shows the whole rollback.
fn line_text(e: &Event, total: Option<usize>) -> String {
    fn step(undo: bool, n: usize, status: &str, host: &str, rest: &str) -> String {
        let undo = if undo { "UNDO " } else { "" };
        format!("  {undo}step {n} {status:<6} {}  {rest}", one_line(host))
    }
    match e {
        Event::PhaseStarted {
            index,
            total,
            name,
            hosts,
        } => {
            let mut s = format!("{} {}", phase_tag(*index, Some(*total)), one_line(name));
            if !hosts.is_empty() {
                let hosts: Vec<_> = hosts.iter().map(|h| one_line(h)).collect();
                s.push_str(" on ");
                s.push_str(&hosts.join(", "));
            }
            s
        }
        Event::PhaseDone { index, name, took } => format!(
            "{} {} done ({})",
            phase_tag(*index, total),
            one_line(name),
            secs(*took)
        ),
        Event::StepStarted { n, host, what } => step(false, *n, "start", host, &one_line(what)),
        Event::StepDone {
            n,
            host,
            what,
            took,
        } => step(
            false,
            *n,
            "ok",
            host,
            &format!("{} ({})", one_line(what), secs(*took)),
        ),
        Event::StepFailed {
            n,
            host,
            what,
            error,
        } => step(
            false,
            *n,
            "FAILED",
            host,
            &format!("{}: {}", one_line(what), one_line(error)),
        ),
        Event::Note {
            host: Some(host),
            message,
        } => format!("  note {}: {}", one_line(host), one_line(message)),
        Event::Note {
            host: None,
            message,
        } => format!("  note {}", one_line(message)),
        Event::RollbackStarted { reason, steps } => format!(
            "UNDO rolling back {}: {}",
            plural(*steps, "step", "steps"),
            one_line(reason)
        ),
        Event::UndoStarted { n, host, what } => step(true, *n, "start", host, &one_line(what)),
        Event::UndoDone {
            n,
            host,
            what,
            took,
        } => step(
            true,
            *n,
            "ok",
            host,
            &format!("{} ({})", one_line(what), secs(*took)),
        ),
        Event::UndoSkipped { n, host, why } => step(
            true,
            *n,
            "skip",
            host,
            &format!("nothing to undo: {}", one_line(why)),
        ),
        Event::UndoFailed {
            n,
            host,
            what,
            error,
        } => step(
            true,
            *n,
            "FAILED",
            host,
            &format!("{}: {}", one_line(what), one_line(error)),
        ),
        Event::Finished { summary, took } => {
            format!("finished: {} ({})", one_line(summary), secs(*took))
        }
    }
}

/// Takes the lock even if a panicking thread poisoned it: a renderer must go
/// on drawing whatever happened elsewhere.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

type Clock = Box<dyn Fn() -> SystemTime + Send + Sync>;

struct LinesState {
    out: Box<dyn Write + Send>,
    /// Phase count from the last `PhaseStarted`.
    total: Option<usize>,
}

/// One line per event, prefixed with the UTC time:
///
/// ```text
/// 11:02:03.456 [3/6] start units on rdm-invenio-ui-blue, rdm-invenio-api-blue
/// 11:02:03.500   step 17 ok     rdm-invenio-ui-blue  start ui.service (0.41 s)
/// 11:02:04.012   step 18 FAILED rdm-invenio-api-blue  start api.service: exit status 1
/// 11:02:04.020 UNDO rolling back 17 steps: step 18 failed
/// 11:02:04.150   UNDO step 17 ok     rdm-invenio-ui-blue  stop ui.service (0.13 s)
/// ```
pub struct Lines {
    state: Mutex<LinesState>,
    clock: Clock,
}

impl Lines {
    /// Lines on stderr, stamped with the system clock.
    pub fn new() -> Lines {
        Lines::with_clock(std::io::stderr(), SystemTime::now)
    }

    /// Lines on any writer, stamped by `clock` (tests use a fixed one).
    pub fn with_clock(
        out: impl Write + Send + 'static,
        clock: impl Fn() -> SystemTime + Send + Sync + 'static,
    ) -> Lines {
        Lines {
            state: Mutex::new(LinesState {
                out: Box::new(out),
                total: None,
            }),
            clock: Box::new(clock),
        }
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Sink for Lines {
    fn emit(&self, e: &Event) {
        let e = &e.masked();
        let mut st = lock(&self.state);
        if let Event::PhaseStarted { total, .. } = e {
            st.total = Some(*total);
        }
        let line = format!(
            "{} {}\n",
            utc_hms_millis((self.clock)()),
            line_text(e, st.total).trim_end()
        );
        // Nowhere to report a failed write to stderr: the run goes on.
        let _ = st.out.write_all(line.as_bytes());
        let _ = st.out.flush();
    }
}

/// How often spinners turn while a phase or a rollback runs.
const TICK: Duration = Duration::from_millis(100);

fn bar_style(template: &str, ticks: &[&str]) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_strings(ticks)
        .progress_chars("█▉▊▋▌▍▎▏░")
}

const SPIN: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", " "];

/// What a host line shows: its mark and colour.
#[derive(Clone, Copy)]
enum HostLook {
    Waiting,
    Running,
    Ok,
    Skipped,
    Failed,
}

impl HostLook {
    fn style(self) -> ProgressStyle {
        match self {
            HostLook::Waiting => {
                bar_style("  {spinner:.dim} {prefix} {wide_msg:.dim}", &["·", "·"])
            }
            HostLook::Running => bar_style("  {spinner:.cyan} {prefix} {wide_msg}", SPIN),
            HostLook::Ok => bar_style("  {spinner:.green} {prefix} {wide_msg}", &["✔", "✔"]),
            HostLook::Skipped => bar_style("  {spinner:.yellow} {prefix} {wide_msg}", &["–", "–"]),
            HostLook::Failed => bar_style("  {spinner:.red} {prefix} {wide_msg:.red}", &["✘", "✘"]),
        }
    }
}

/// What the top bar counts.
enum Top {
    None,
    Phase {
        index: usize,
        total: usize,
        name: String,
        bar: ProgressBar,
        steps_ok: usize,
    },
    Rollback {
        bar: ProgressBar,
        steps: usize,
        undone: usize,
        skipped: usize,
        failed: usize,
    },
}

struct BarsState {
    mp: MultiProgress,
    top: Top,
    /// One spinner per host, in the order they were first named.
    hosts: Vec<(String, ProgressBar)>,
    /// Width of the host column.
    width: usize,
    /// Phase count from the last `PhaseStarted`.
    total: Option<usize>,
}

impl BarsState {
    fn println(&self, line: impl AsRef<str>) {
        // Nowhere to report a failed write to stderr: the run goes on.
        let _ = self.mp.println(line);
    }

    /// The spinner of `host`, added (and ticking) if it has none yet.
    fn host(&mut self, host: &str) -> ProgressBar {
        let host = one_line(host).into_owned();
        if let Some((_, bar)) = self.hosts.iter().find(|(h, _)| *h == host) {
            return bar.clone();
        }
        let w = host.chars().count();
        if w > self.width {
            self.width = w;
            for (h, bar) in &self.hosts {
                bar.set_prefix(format!("{h:<w$}"));
            }
        }
        let bar = self.mp.add(
            ProgressBar::new_spinner()
                .with_style(HostLook::Waiting.style())
                .with_prefix(format!("{host:<width$}", width = self.width))
                .with_message("waiting"),
        );
        bar.enable_steady_tick(TICK);
        self.hosts.push((host, bar.clone()));
        bar
    }

    fn set_host(&mut self, host: &str, look: HostLook, message: String) {
        let bar = self.host(host);
        bar.set_style(look.style());
        bar.set_message(message);
    }

    /// Removes every live bar; what was printed above them stays.
    fn clear_bars(&mut self) {
        match std::mem::replace(&mut self.top, Top::None) {
            Top::None => {}
            Top::Phase { bar, .. } | Top::Rollback { bar, .. } => {
                bar.finish_and_clear();
                self.mp.remove(&bar);
            }
        }
        for (_, bar) in self.hosts.drain(..) {
            bar.finish_and_clear();
            self.mp.remove(&bar);
        }
        self.width = 0;
        let _ = self.mp.clear();
    }

    /// A phase bar left without its `PhaseDone` gets a line saying so.
    fn close_open_phase(&mut self) {
        if let Top::Phase {
            index,
            total,
            name,
            steps_ok,
            ..
        } = &self.top
        {
            let line = format!(
                "✘ {} {} not completed ({} ok)",
                phase_tag(*index, Some(*total)),
                name,
                plural(*steps_ok, "step", "steps")
            );
            self.println(style(line).red().for_stderr().to_string());
        }
        self.clear_bars();
    }

    fn step_ok(&mut self) {
        if let Top::Phase {
            name,
            bar,
            steps_ok,
            ..
        } = &mut self.top
        {
            *steps_ok += 1;
            bar.set_message(format!(
                "{name} · {} ok",
                plural(*steps_ok, "step", "steps")
            ));
        }
    }

    /// Counts one undo step; when all are counted the rollback is over:
    /// its line is printed and the bars go.
    fn undo_counted(&mut self, outcome: HostLook) {
        let Top::Rollback {
            bar,
            steps,
            undone,
            skipped,
            failed,
        } = &mut self.top
        else {
            return;
        };
        match outcome {
            HostLook::Ok => *undone += 1,
            HostLook::Skipped => *skipped += 1,
            _ => *failed += 1,
        }
        bar.inc(1);
        let counted = *undone + *skipped + *failed;
        if counted < *steps {
            return;
        }
        let line = format!(
            "↺ UNDO finished: {} undone, {} skipped, {} failed",
            undone, skipped, failed
        );
        let line = if *failed > 0 {
            style(line).red().for_stderr()
        } else {
            style(line).yellow().for_stderr()
        };
        self.println(line.to_string());
        self.clear_bars();
    }

    fn emit(&mut self, e: &Event) {
        match e {
            Event::PhaseStarted {
                index,
                total,
                name,
                hosts,
            } => {
                self.close_open_phase();
                self.total = Some(*total);
                let name = one_line(name).into_owned();
                let bar = self.mp.add(
                    ProgressBar::new(*total as u64)
                        .with_style(bar_style(
                            "{spinner:.cyan} {prefix:.bold} {msg} {bar:24.cyan/blue} {pos}/{len} phases {elapsed:.dim}",
                            SPIN,
                        ))
                        .with_prefix(phase_tag(*index, Some(*total)))
                        .with_message(name.clone())
                        .with_position(index.saturating_sub(1) as u64),
                );
                bar.enable_steady_tick(TICK);
                self.top = Top::Phase {
                    index: *index,
                    total: *total,
                    name,
                    bar,
                    steps_ok: 0,
                };
                for h in hosts {
                    self.host(h);
                }
            }
            Event::PhaseDone { index, name, took } => {
                let steps = match &self.top {
                    Top::Phase { steps_ok, .. } => {
                        format!(" · {} ok", plural(*steps_ok, "step", "steps"))
                    }
                    _ => String::new(),
                };
                let line = format!(
                    "{} {} {}{} · {}",
                    style("✔").green().for_stderr(),
                    style(phase_tag(*index, self.total)).bold().for_stderr(),
                    one_line(name),
                    steps,
                    secs(*took)
                );
                self.clear_bars();
                self.println(line);
            }
            Event::StepStarted { n, host, what } => {
                self.set_host(
                    host,
                    HostLook::Running,
                    format!("step {n} {}", one_line(what)),
                );
            }
            Event::StepDone {
                n,
                host,
                what,
                took,
            } => {
                self.step_ok();
                let msg = format!("step {n} {} ({})", one_line(what), secs(*took));
                self.set_host(host, HostLook::Ok, msg);
            }
            Event::StepFailed {
                n,
                host,
                what,
                error,
            } => {
                let msg = format!("step {n} {}: {}", one_line(what), one_line(error));
                let line = format!("✘ {}  FAILED {msg}", one_line(host));
                self.println(style(line).red().for_stderr().to_string());
                self.set_host(host, HostLook::Failed, format!("FAILED {msg}"));
            }
            Event::Note { host, message } => {
                let line = match host {
                    Some(h) => format!("· {}: {}", one_line(h), one_line(message)),
                    None => format!("· {}", one_line(message)),
                };
                self.println(style(line).dim().for_stderr().to_string());
            }
            Event::RollbackStarted { reason, steps } => {
                if let Top::Phase { .. } = self.top {
                    self.close_open_phase();
                } else {
                    self.clear_bars();
                }
                let line = format!(
                    "↺ UNDO rolling back {}: {}",
                    plural(*steps, "step", "steps"),
                    one_line(reason)
                );
                self.println(style(line).yellow().bold().for_stderr().to_string());
                if *steps == 0 {
                    return;
                }
                let bar = self.mp.add(
                    ProgressBar::new(*steps as u64)
                        .with_style(bar_style(
                            "{spinner:.yellow} {prefix:.yellow.bold} {msg} {bar:24.yellow} {pos}/{len} steps {elapsed:.dim}",
                            SPIN,
                        ))
                        .with_prefix("UNDO")
                        .with_message("rolling back"),
                );
                bar.enable_steady_tick(TICK);
                self.top = Top::Rollback {
                    bar,
                    steps: *steps,
                    undone: 0,
                    skipped: 0,
                    failed: 0,
                };
            }
            Event::UndoStarted { n, host, what } => {
                let msg = format!("UNDO step {n} {}", one_line(what));
                self.set_host(host, HostLook::Running, msg);
            }
            Event::UndoDone {
                n,
                host,
                what,
                took,
            } => {
                let msg = format!("UNDO step {n} {} ({})", one_line(what), secs(*took));
                self.set_host(host, HostLook::Ok, msg);
                self.undo_counted(HostLook::Ok);
            }
            Event::UndoSkipped { n, host, why } => {
                let msg = format!("UNDO step {n} nothing to undo: {}", one_line(why));
                self.set_host(host, HostLook::Skipped, msg);
                self.undo_counted(HostLook::Skipped);
            }
            Event::UndoFailed {
                n,
                host,
                what,
                error,
            } => {
                let msg = format!("UNDO step {n} {}: {}", one_line(what), one_line(error));
                let line = format!("✘ {}  FAILED {msg}", one_line(host));
                self.println(style(line).red().for_stderr().to_string());
                self.set_host(host, HostLook::Failed, format!("FAILED {msg}"));
                self.undo_counted(HostLook::Failed);
            }
            Event::Finished { summary, took } => {
                self.clear_bars();
                let line = format!("{} ({})", one_line(summary), secs(*took));
                self.println(style(line).bold().for_stderr().to_string());
            }
        }
    }
}

/// indicatif bars on stderr: one bar for the running phase (or rollback),
/// one line per host with what it does now or its last result. Failures and
/// notes are printed as lines above the bars and stay; the bars themselves
/// are cleared when their phase is done and at `Finished` (and on drop).
pub struct Bars {
    state: Mutex<BarsState>,
}

impl Bars {
    /// Bars on stderr (indicatif hides them if stderr is not a terminal).
    pub fn new() -> Bars {
        Bars::with_target(ProgressDrawTarget::stderr())
    }

    /// Bars on any draw target (tests use `ProgressDrawTarget::hidden()`).
    pub fn with_target(target: ProgressDrawTarget) -> Bars {
        Bars {
            state: Mutex::new(BarsState {
                mp: MultiProgress::with_draw_target(target),
                top: Top::None,
                hosts: Vec::new(),
                width: 0,
                total: None,
            }),
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Sink for Bars {
    fn emit(&self, e: &Event) {
        lock(&self.state).emit(&e.masked());
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        lock(&self.state).clear_bars();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer the test can read back (the renderers' tests share it).
    #[derive(Clone, Default)]
    pub(crate) struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&lock(&self.0)).into_owned()
        }
    }

    /// 2024-06-01 11:02:03.456 UTC.
    fn fixed() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_717_239_723_456)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    /// A whole run: two phases, a failure, the rollback.
    fn run() -> Vec<Event> {
        let ui = s("rdm-invenio-ui-blue");
        let api = s("rdm-invenio-api-blue");
        vec![
            Event::Note {
                host: Some(s("rdm-haproxy")),
                message: s("lock taken"),
            },
            Event::PhaseStarted {
                index: 3,
                total: 6,
                name: s("start units"),
                hosts: vec![ui.clone(), api.clone()],
            },
            Event::StepStarted {
                n: 17,
                host: ui.clone(),
                what: s("start ui.service"),
            },
            Event::StepDone {
                n: 17,
                host: ui.clone(),
                what: s("start ui.service"),
                took: ms(410),
            },
            Event::StepStarted {
                n: 18,
                host: api.clone(),
                what: s("start api.service"),
            },
            Event::StepFailed {
                n: 18,
                host: api.clone(),
                what: s("start api.service"),
                error: s("exit status 1\nJob failed.\n"),
            },
            Event::RollbackStarted {
                reason: s("step 18 failed"),
                steps: 2,
            },
            Event::UndoStarted {
                n: 17,
                host: ui.clone(),
                what: s("stop ui.service"),
            },
            Event::UndoDone {
                n: 17,
                host: ui.clone(),
                what: s("stop ui.service"),
                took: ms(130),
            },
            Event::UndoSkipped {
                n: 16,
                host: api.clone(),
                why: s("already stopped"),
            },
            Event::Note {
                host: None,
                message: s("lock released"),
            },
            Event::Finished {
                summary: s("rolled back: blue is still live"),
                took: Duration::from_millis(12_345),
            },
        ]
    }

    #[test]
    fn clock_is_utc_hh_mm_ss_millis() {
        assert_eq!(utc_hms_millis(fixed()), "11:02:03.456");
        assert_eq!(utc_hms_millis(UNIX_EPOCH), "00:00:00.000");
        assert_eq!(
            utc_hms_millis(UNIX_EPOCH + Duration::from_millis(86_399_999)),
            "23:59:59.999"
        );
    }

    #[test]
    fn lines_exact_text() {
        let buf = Buf::default();
        let lines = Lines::with_clock(buf.clone(), fixed);
        for e in run() {
            lines.emit(&e);
        }
        lines.emit(&Event::PhaseDone {
            index: 3,
            name: s("start units"),
            took: Duration::from_millis(2_305),
        });
        lines.emit(&Event::UndoFailed {
            n: 15,
            host: s("rdm-haproxy"),
            what: s("restore /etc/haproxy/haproxy.cfg"),
            error: s("sha256 changed"),
        });
        let expected = "\
11:02:03.456   note rdm-haproxy: lock taken
11:02:03.456 [3/6] start units on rdm-invenio-ui-blue, rdm-invenio-api-blue
11:02:03.456   step 17 start  rdm-invenio-ui-blue  start ui.service
11:02:03.456   step 17 ok     rdm-invenio-ui-blue  start ui.service (0.41 s)
11:02:03.456   step 18 start  rdm-invenio-api-blue  start api.service
11:02:03.456   step 18 FAILED rdm-invenio-api-blue  start api.service: exit status 1\\nJob failed.
11:02:03.456 UNDO rolling back 2 steps: step 18 failed
11:02:03.456   UNDO step 17 start  rdm-invenio-ui-blue  stop ui.service
11:02:03.456   UNDO step 17 ok     rdm-invenio-ui-blue  stop ui.service (0.13 s)
11:02:03.456   UNDO step 16 skip   rdm-invenio-api-blue  nothing to undo: already stopped
11:02:03.456   note lock released
11:02:03.456 finished: rolled back: blue is still live (12.35 s)
11:02:03.456 [3/6] start units done (2.31 s)
11:02:03.456   UNDO step 15 FAILED rdm-haproxy  restore /etc/haproxy/haproxy.cfg: sha256 changed
";
        assert_eq!(buf.text(), expected);
    }

    #[test]
    fn lines_stamp_each_line_with_the_clock_now() {
        let buf = Buf::default();
        let t = Arc::new(Mutex::new(fixed()));
        let clock = {
            let t = Arc::clone(&t);
            move || *lock(&t)
        };
        let lines = Lines::with_clock(buf.clone(), clock);
        lines.emit(&Event::RollbackStarted {
            reason: s("operator chose to roll back"),
            steps: 1,
        });
        *lock(&t) += ms(44);
        lines.emit(&Event::Finished {
            summary: s("rolled back"),
            took: ms(5),
        });
        assert_eq!(
            buf.text(),
            "11:02:03.456 UNDO rolling back 1 step: operator chose to roll back\n\
             11:02:03.500 finished: rolled back (0.01 s)\n"
        );
    }

    #[test]
    fn lines_escape_control_characters() {
        let buf = Buf::default();
        let lines = Lines::with_clock(buf.clone(), fixed);
        lines.emit(&Event::StepFailed {
            n: 2,
            host: s("h"),
            what: s("run\tx"),
            error: s("\x1b[2Jboom\r\n"),
        });
        assert_eq!(
            buf.text(),
            "11:02:03.456   step 2 FAILED h  run x: \\u{1b}[2Jboom\\u{d}\n"
        );
    }

    #[test]
    fn lines_take_any_order() {
        let buf = Buf::default();
        let lines = Lines::with_clock(buf.clone(), fixed);
        let mut events = run();
        events.reverse();
        events.insert(
            0,
            Event::PhaseDone {
                index: 9,
                name: s("never started"),
                took: Duration::ZERO,
            },
        );
        events.push(Event::PhaseStarted {
            index: 0,
            total: 0,
            name: String::new(),
            hosts: vec![],
        });
        events.push(Event::RollbackStarted {
            reason: String::new(),
            steps: 0,
        });
        for e in &events {
            lines.emit(e);
        }
        let text = buf.text();
        assert!(text.starts_with("11:02:03.456 [9/?] never started done (0.00 s)\n"));
        assert_eq!(text.lines().count(), events.len());
        assert!(text.ends_with("11:02:03.456 UNDO rolling back 0 steps:\n"));
    }

    fn hidden() -> Bars {
        Bars::with_target(ProgressDrawTarget::hidden())
    }

    #[test]
    fn renderers_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Bars>();
        check::<Lines>();
    }

    #[test]
    fn bars_take_a_whole_run() {
        let bars = hidden();
        for e in run() {
            bars.emit(&e);
        }
        let st = lock(&bars.state);
        assert!(st.hosts.is_empty());
        assert!(matches!(st.top, Top::None));
    }

    #[test]
    fn bars_take_a_successful_run_and_clear_between_phases() {
        let bars = hidden();
        for (i, name) in ["preflight", "stop units", "swap"].iter().enumerate() {
            bars.emit(&Event::PhaseStarted {
                index: i + 1,
                total: 3,
                name: s(name),
                hosts: vec![s("a"), s("bb")],
            });
            for n in 0..3 {
                let host = if n % 2 == 0 { s("a") } else { s("bb") };
                bars.emit(&Event::StepStarted {
                    n,
                    host: host.clone(),
                    what: s("x"),
                });
                bars.emit(&Event::StepDone {
                    n,
                    host,
                    what: s("x"),
                    took: ms(3),
                });
            }
            {
                let st = lock(&bars.state);
                assert_eq!(st.hosts.len(), 2);
                assert!(matches!(st.top, Top::Phase { steps_ok: 3, .. }));
            }
            bars.emit(&Event::PhaseDone {
                index: i + 1,
                name: s(name),
                took: ms(9),
            });
            let st = lock(&bars.state);
            assert!(st.hosts.is_empty(), "nothing live between phases");
            assert!(matches!(st.top, Top::None));
        }
        bars.emit(&Event::Finished {
            summary: s("green is live"),
            took: ms(30),
        });
    }

    /// A terminal that keeps everything written to it, one entry a write.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            60
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            lock(&self.0).push(console::strip_ansi_codes(s).into_owned());
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.write_line(s)
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bars_draw_a_whole_run_and_keep_failures_and_summary() {
        let screen = Screen::default();
        let bars = Bars::with_target(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        for e in run() {
            bars.emit(&e);
        }
        drop(bars);
        let written = lock(&screen.0).join("\n");
        for want in [
            "· rdm-haproxy: lock taken",
            "✘ rdm-invenio-api-blue  FAILED step 18 start api.service: exit status 1\\nJob failed.",
            "✘ [3/6] start units not completed (1 step ok)",
            "↺ UNDO rolling back 2 steps: step 18 failed",
            "↺ UNDO finished: 1 undone, 1 skipped, 0 failed",
            "rolled back: blue is still live (12.35 s)",
        ] {
            assert!(written.contains(want), "{want:?} not in:\n{written}");
        }
        // The live lines were drawn too (and, at 60 columns, cut to fit).
        assert!(written.contains("[3/6] start units"), "{written}");
        assert!(
            written
                .lines()
                .all(|l| l.chars().count() <= 60 || !l.contains("step 17")),
            "{written}"
        );
    }

    #[test]
    fn bars_take_any_order() {
        let bars = hidden();
        let mut events = run();
        events.reverse();
        for e in &events {
            bars.emit(e);
        }
        // Steps and undos with no phase and no rollback, more undos than
        // announced, a phase interrupted by another, events after Finished.
        let odd = [
            Event::StepDone {
                n: 1,
                host: s("x"),
                what: s("w"),
                took: ms(1),
            },
            Event::UndoFailed {
                n: 1,
                host: s("a-much-longer-host-name"),
                what: s("w"),
                error: s("e"),
            },
            Event::RollbackStarted {
                reason: s("r"),
                steps: 0,
            },
            Event::UndoDone {
                n: 1,
                host: s("x"),
                what: s("w"),
                took: ms(1),
            },
            Event::RollbackStarted {
                reason: s("r"),
                steps: 1,
            },
            Event::UndoDone {
                n: 1,
                host: s("x"),
                what: s("w"),
                took: ms(1),
            },
            Event::UndoSkipped {
                n: 0,
                host: s("x"),
                why: s("w"),
            },
            Event::PhaseStarted {
                index: 0,
                total: 0,
                name: s("p"),
                hosts: vec![s("x"), s("x")],
            },
            Event::PhaseStarted {
                index: 7,
                total: 2,
                name: s("q"),
                hosts: vec![],
            },
            Event::PhaseDone {
                index: 1,
                name: s("other"),
                took: ms(1),
            },
            Event::PhaseDone {
                index: 1,
                name: s("other"),
                took: ms(1),
            },
        ];
        for e in &odd {
            bars.emit(e);
        }
        drop(bars);
    }
}
