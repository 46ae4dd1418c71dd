//! Whom a blocked leaf waited on, read from spindump's `(blocked by …)` note. The notes
//! come in many shapes; all name their target the same few ways:
//!
//! ```text
//! turnstile waiting for Python [69076] thread 0x57be71   a thread of a process
//! unfair lock owned by mds [371] thread 0x1b02          a lock's owner
//! mach msg receive on port 0x1a03 with receiver coreaudiod [188] thread 0x9e1
//! wait4 on mdimport [902]                               a process (a child it waits for)
//! turnstile waiting for RemoteMic main thread           a process's main thread, by name
//! turnstile waiting for smd                             a process by name alone
//! turnstile waiting for this thread                     itself: no one else to blame
//! disk I/O, semaphore, …                                nobody in the report
//! ```

/// A process named by a note: by pid, by name, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ProcessRef {
    /// Its name, when the note gives it.
    pub name: Option<String>,
    /// Its pid, when the note gives it.
    pub pid: Option<u32>,
}

/// Whom a thread waited on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One thread of a process.
    Thread { process: ProcessRef, thread: String },
    /// A process's main thread.
    Main(ProcessRef),
    /// A process, thread unknown.
    Process(ProcessRef),
    /// The waiting thread itself (a lock it already holds, or a turnstile it owns).
    Itself,
}

/// Words that come right before the name of whoever is waited on.
const BEFORE_TARGET: [&str; 7] =
    ["waiting for ", "owned by ", "processed by ", "receiver ", "held by ", "wait4 on ", "serviced by "];

/// The target of a state such as `blocked by turnstile waiting for smd`; `None` when
/// the state is not `blocked by …` or names nobody (disk I/O, a semaphore).
pub fn target(state: &str) -> Option<Target> {
    let note = state.strip_prefix("blocked by ")?.trim();
    if note.ends_with("this thread") {
        return Some(Target::Itself);
    }
    // Where the last target phrase starts: `… with receiver X` outranks `… on port`.
    let (start, _) = BEFORE_TARGET
        .iter()
        .filter_map(|word| note.rfind(word).map(|at| (at + word.len(), *word)))
        .max_by_key(|(at, _)| *at)?;
    let named = note[start..].trim();
    if let Some((name, pid, rest)) = name_and_pid(named) {
        let process = ProcessRef { name, pid: Some(pid) };
        return Some(match rest.trim().strip_prefix("thread ") {
            Some(thread) => Target::Thread { process, thread: first_word(thread).to_string() },
            None => Target::Process(process),
        });
    }
    if let Some(name) = named.strip_suffix(" main thread").or_else(|| named.strip_suffix("'s main thread")) {
        return Some(Target::Main(ProcessRef { name: Some(name.trim().to_string()), pid: None }));
    }
    let name = named.trim_end_matches(|c: char| c == ')' || c.is_whitespace());
    (!name.is_empty() && !name.starts_with("0x"))
        .then(|| Target::Process(ProcessRef { name: Some(name.to_string()), pid: None }))
}

/// `Python [69076] thread 0x57be71` → (`Python`, 69076, ` thread 0x57be71`); the name may
/// hold spaces and be missing (`[812] has exited`).
fn name_and_pid(text: &str) -> Option<(Option<String>, u32, &str)> {
    let open = text.find('[')?;
    let close = open + text[open..].find(']')?;
    let pid = text[open + 1..close].parse().ok()?;
    let name = text[..open].trim();
    Some(((!name.is_empty()).then(|| name.to_string()), pid, &text[close + 1..]))
}

fn first_word(text: &str) -> &str {
    text.split(|c: char| c.is_whitespace() || c == ')').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(name: &str, pid: Option<u32>) -> ProcessRef {
        ProcessRef { name: (!name.is_empty()).then(|| name.to_string()), pid }
    }

    #[test]
    fn every_shape_of_note_names_its_target() {
        let thread = |name: &str, pid, t: &str| Target::Thread { process: process(name, Some(pid)), thread: t.into() };
        let cases = [
            (
                "blocked by turnstile waiting for Python [69076] thread 0x57be71",
                Some(thread("Python", 69076, "0x57be71")),
            ),
            ("blocked by turnstile waiting for this thread", Some(Target::Itself)),
            ("blocked by turnstile waiting for RemoteMic main thread", Some(Target::Main(process("RemoteMic", None)))),
            ("blocked by turnstile waiting for smd", Some(Target::Process(process("smd", None)))),
            ("blocked by unfair lock owned by mds [371] thread 0x1b02", Some(thread("mds", 371, "0x1b02"))),
            ("blocked by wait4 on mdimport [902]", Some(Target::Process(process("mdimport", Some(902))))),
            (
                "blocked by mach msg receive on port 0x1a03 with receiver coreaudiod [188] thread 0x9e1",
                Some(thread("coreaudiod", 188, "0x9e1")),
            ),
            (
                "blocked by turnstile waiting for Google Chrome Helper (Renderer) [812] thread 0x9",
                Some(thread("Google Chrome Helper (Renderer)", 812, "0x9")),
            ),
            ("blocked by turnstile waiting for [812] has exited", Some(Target::Process(process("", Some(812))))),
            ("blocked by disk I/O", None),
            ("blocked by semaphore", None),
            ("running", None),
            ("blocked by turnstile waiting for 0x1234", None),
        ];
        for (note, want) in cases {
            assert_eq!(target(note), want, "{note}");
        }
    }
}
