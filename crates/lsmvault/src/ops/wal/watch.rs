//! `wal archive --watch`: archive rounds every interval and, between and
//! during them, a hard link into the holding directory (see `hold.rs`) for
//! each WAL file the moment it appears, so a segment the database deletes
//! before the next round is still archived whole.
//!
//! On Linux the database directory and its `archive/` are watched with
//! inotify (`IN_CREATE`, `IN_MOVED_TO`) by a thread of its own
//! ([`WalPickup`], started before the repository is opened), which links
//! while a round runs. Elsewhere, or if inotify cannot be set up, each
//! round's rescan links what it finds (the interval is then the window in
//! which a deleted segment can be missed).
//!
//! Each round is checked for new gaps ([`Error::WalGap`], after
//! committing). A round that cannot run now (the repository is locked by a
//! prune, the storage is throttling) is skipped and retried: ending the
//! watcher would also end the links. A stop asked through the
//! [`Interrupt`] ends the wait: one more round archives what came since and
//! releases the links, and the watcher returns.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::hold::Ownership;
use super::{ArchiveOptions, ArchiveReport, Holding};
use crate::error::{Error, ErrorCode, Result};
use crate::interrupt::Interrupt;
use crate::repo::Repository;

/// How a watcher runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Time between two archive rounds (the rate at which a growing
    /// segment is archived).
    pub interval: Duration,
    /// Ends the watcher after one last round.
    pub interrupt: Interrupt,
}

/// What one round of a watcher did.
#[derive(Debug)]
pub enum Round<'a> {
    /// The round archived (its report).
    Archived(&'a ArchiveReport),
    /// The round could not run now (another command holds the repository
    /// lock, the storage is throttling): the links keep being made, and the
    /// next round archives everything.
    Skipped(&'a Error),
}

/// Whether a round that failed so is retried at the next interval rather
/// than ending the watcher: stopping would also stop the links.
fn retry_later(error: &Error) -> bool {
    error.code() == ErrorCode::RepositoryLocked
        || matches!(error, Error::Backend(failure) if failure.is_transient())
}

/// The longest a wait sleeps before looking at the interrupt again.
const POLL_SLICE: Duration = Duration::from_millis(100);

/// The picking up of new WAL files, running from [`WalPickup::start`] until
/// dropped: the holding directory and the thread that links each WAL file
/// as inotify reports it. Started before the repository is opened (which
/// can take a second for an encrypted one), so a restarted watcher is blind
/// for as short a time as possible.
pub struct WalPickup {
    holding: Holding,
    linker: Arc<Linker>,
    thread: Option<JoinHandle<()>>,
    /// Keeps a second watcher out of this repository's part.
    _owner: Ownership,
}

impl WalPickup {
    /// Creates the part of repository `repository_id` (see
    /// [`Repository::unverified_id`]; [`Repository::watch_wal`] checks it)
    /// in the holding directory of the database in `directory` (`hold_dir`,
    /// or the default), refused while another watcher keeps it, links every
    /// WAL file there now and starts watching for new ones (Linux;
    /// elsewhere only the rounds link).
    pub fn start(
        directory: &Path,
        hold_dir: Option<&Path>,
        repository_id: &str,
    ) -> Result<WalPickup> {
        let holding = Holding::new(directory, hold_dir, repository_id)?;
        let owner = holding.create()?;
        let linker = Arc::new(Linker::default());
        // Watching first, then linking what is there: nothing falls between.
        let watcher = events::Watcher::new(directory);
        holding.hold_all()?;
        let thread = watcher.map(|mut watcher| {
            let (holding, linker) = (holding.clone(), Arc::clone(&linker));
            std::thread::spawn(move || linker.run(&mut watcher, &holding))
        });
        Ok(WalPickup {
            holding,
            linker,
            thread,
            _owner: owner,
        })
    }
}

impl WalPickup {
    /// Stops picking up and removes the links this start made of files the
    /// database still has (copies of nothing lost), for a watcher that
    /// could not start (the repository would not open). Links of files the
    /// database deleted stay for the next archive run.
    pub fn abandon(self) {
        self.linker.stop.store(true, Ordering::SeqCst);
        let held = self.holding.held().into_iter().map(|(_, name, _)| name);
        let _ = self
            .holding
            .release(&held.collect(), &BTreeSet::new(), true);
    }
}

impl Drop for WalPickup {
    fn drop(&mut self) {
        self.linker.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Repository {
    /// Archives the WAL of the database in `directory` every interval while
    /// `pickup` holds each new WAL file as it appears, until the interrupt
    /// is triggered; `on_round` sees each round's report (then its new gaps
    /// end the watcher with [`Error::WalGap`]) or why it was skipped (a lock
    /// conflict or a throttling storage: retried at the next interval).
    /// Returns after the last round. `options.hold_dir` is `pickup`'s.
    pub fn watch_wal(
        &self,
        directory: &Path,
        options: &ArchiveOptions,
        pickup: WalPickup,
        watch: &WatchOptions,
        on_round: &mut dyn FnMut(Round<'_>) -> Result<()>,
    ) -> Result<()> {
        let options = ArchiveOptions {
            hold_dir: Some(pickup.holding.root().to_path_buf()),
            ..options.clone()
        };
        // The pickup started before the repository was opened, from its
        // unauthenticated config: its part must be this repository's.
        let rounds = Holding::new(directory, options.hold_dir.as_deref(), &self.config().id)?;
        if rounds.path() != pickup.holding.path() {
            return Err(Error::InvalidArgument(format!(
                "{} is not the holding directory part of repository {}: its config changed while the watcher started",
                pickup.holding.path().display(),
                self.config().id
            )));
        }
        // The thread stops when `pickup` is dropped, after the last round.
        self.watch_rounds(directory, &options, watch, &pickup.linker, on_round)
    }

    /// The rounds of [`Repository::watch_wal`]: every interval, then one
    /// more once interrupted, which also releases the held links.
    fn watch_rounds(
        &self,
        directory: &Path,
        options: &ArchiveOptions,
        watch: &WatchOptions,
        linker: &Linker,
        on_round: &mut dyn FnMut(Round<'_>) -> Result<()>,
    ) -> Result<()> {
        loop {
            let last = watch.interrupt.is_triggered();
            let round_options = ArchiveOptions {
                // A round links everything it finds first: the fallback
                // when inotify is not available or lost events.
                hold_new: true,
                release_held: last,
                ..options.clone()
            };
            match self.archive_wal(directory, &round_options) {
                Ok(report) => {
                    on_round(Round::Archived(&report))?;
                    linker.check()?;
                    report.check_gaps()?;
                    if last {
                        return Ok(());
                    }
                }
                Err(error) if retry_later(&error) && !last => {
                    on_round(Round::Skipped(&error))?;
                    linker.check()?;
                }
                Err(error) => return Err(error),
            }
            let next = Instant::now() + watch.interval;
            while !watch.interrupt.is_triggered() && Instant::now() < next {
                std::thread::sleep(POLL_SLICE.min(next - Instant::now()));
            }
        }
    }
}

/// The thread that links new WAL files as inotify reports them, and the
/// first error it met (reported by the next round).
#[derive(Default)]
struct Linker {
    stop: AtomicBool,
    failure: Mutex<Option<Error>>,
}

impl Linker {
    fn run(&self, watcher: &mut events::Watcher, holding: &Holding) {
        while !self.stop.load(Ordering::SeqCst) {
            if let Err(error) = watcher.hold_new_files(holding, POLL_SLICE) {
                if let Ok(mut failure) = self.failure.lock() {
                    failure.get_or_insert(error);
                }
                return;
            }
        }
    }

    /// The linking thread's failure, if it had one.
    fn check(&self) -> Result<()> {
        match self
            .failure
            .lock()
            .ok()
            .and_then(|mut failure| failure.take())
        {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

#[cfg(target_os = "linux")]
mod events {
    //! inotify on the database directory and its `archive/`.

    use std::ffi::OsStr;
    use std::os::fd::AsFd;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use nix::errno::Errno;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

    use crate::error::Result;
    use crate::ops::wal::Holding;

    /// The inotify instance and the directory each watch is on.
    pub struct Watcher {
        inotify: Inotify,
        directory: PathBuf,
        watches: Vec<(WatchDescriptor, PathBuf)>,
    }

    fn flags() -> AddWatchFlags {
        AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO
    }

    impl Watcher {
        /// Watches `directory` (and its `archive/` if it exists); `None`
        /// when inotify cannot be set up (the rounds' rescans remain).
        pub fn new(directory: &Path) -> Option<Watcher> {
            let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
            let top = inotify.add_watch(directory, flags()).ok()?;
            let mut watcher = Watcher {
                inotify,
                directory: directory.to_path_buf(),
                watches: vec![(top, directory.to_path_buf())],
            };
            watcher.watch_archive();
            Some(watcher)
        }

        /// Adds a watch on `archive/` once it exists (RocksDB creates it
        /// when it first moves a segment there).
        fn watch_archive(&mut self) -> bool {
            let archive = self.directory.join("archive");
            if self.watches.iter().any(|(_, path)| *path == archive) {
                return false;
            }
            match self.inotify.add_watch(&archive, flags()) {
                Ok(descriptor) => {
                    self.watches.push((descriptor, archive));
                    true
                }
                Err(_) => false,
            }
        }

        /// Waits up to `wait` for files to appear and links each new WAL
        /// file into the holding directory.
        pub fn hold_new_files(&mut self, holding: &Holding, wait: Duration) -> Result<()> {
            let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) | Err(Errno::EINTR) => return Ok(()),
                Ok(_) | Err(_) => {}
            }
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return Ok(()),
                // The queue overflowed or broke: link what is there now.
                Err(_) => {
                    holding.hold_all()?;
                    return Ok(());
                }
            };
            let mut rescan = false;
            for event in events {
                let Some(name) = event.name.as_deref() else {
                    // IN_Q_OVERFLOW: events were lost.
                    rescan = true;
                    continue;
                };
                if name == OsStr::new("archive") && self.watch_archive() {
                    rescan = true;
                    continue;
                }
                let place = self
                    .watches
                    .iter()
                    .find(|(descriptor, _)| *descriptor == event.wd)
                    .map(|(_, path)| path);
                if let Some(place) = place {
                    // Anything but a WAL file (a directory, `app.log`) is
                    // left alone by `hold`.
                    holding.hold(&place.join(name))?;
                }
            }
            if rescan {
                holding.hold_all()?;
            }
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod events {
    //! No inotify: the rounds' rescans link what they find.

    use std::path::Path;
    use std::time::Duration;

    use crate::error::Result;
    use crate::ops::wal::Holding;

    pub enum Watcher {}

    impl Watcher {
        pub fn new(_directory: &Path) -> Option<Watcher> {
            None
        }

        pub fn hold_new_files(&mut self, _holding: &Holding, _wait: Duration) -> Result<()> {
            match *self {}
        }
    }
}
