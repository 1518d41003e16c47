//! The WAL writer: one OS thread owns the active segment file, so appends never block a
//! runtime thread on `write` or `fsync`, and group commit falls out of draining the queue.
//!
//! Records are written in the order they were queued. A writer whose records refer to earlier
//! records of the same segment (the metrics WAL's series references) queues them under its own
//! lock and passes the *generation* it decided them in: the writer bumps the generation at every
//! rotation and every failed write, and refuses an append from an older one, so a record never
//! lands where what it refers to is missing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::v2::{encode_record, MAGIC};
use crate::{list_segments, segment_path, SegmentSeq, WalError};

#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Sync to disk before acknowledging. Off only for benchmarks that measure everything else.
    pub fsync: bool,
    /// A segment is closed and a new one started past this size (`u64::MAX`: only when asked,
    /// for a writer that rotates the WAL itself).
    pub max_segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            fsync: true,
            max_segment_bytes: 128 << 20,
        }
    }
}

type Ack = tokio::sync::oneshot::Sender<Result<SegmentSeq, String>>;

/// Counts the writer's rotations and failed writes; see the module note.
pub type Generation = u64;

enum Command {
    Append {
        payload: Vec<u8>,
        ack: Ack,
        expect: Option<Generation>,
    },
    Rotate {
        ack: tokio::sync::oneshot::Sender<SegmentSeq>,
    },
}

/// Observes fsync latency; the server wires it to its histogram.
pub type FsyncObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// Handle to the WAL; cheap to clone, every clone feeds the same writer thread.
#[derive(Clone)]
pub struct Wal {
    dir: PathBuf,
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

/// What the writer thread publishes to handles.
#[derive(Default)]
struct Shared {
    active_seq: AtomicU64,
    generation: AtomicU64,
}

/// An append queued in order, not yet durable.
pub struct Appending {
    done: tokio::sync::oneshot::Receiver<Result<SegmentSeq, String>>,
    dir: PathBuf,
}

impl Appending {
    /// Resolves with the segment the record landed in once it is durable.
    pub async fn durable(self) -> Result<SegmentSeq, WalError> {
        match self.done.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(message)) => Err(WalError::Io {
                path: self.dir.display().to_string(),
                source: std::io::Error::other(message),
            }),
            Err(_) => Err(WalError::Stopped),
        }
    }
}

struct Writer {
    dir: PathBuf,
    options: WalOptions,
    file: File,
    seq: SegmentSeq,
    written_bytes: u64,
    generation: Generation,
    shared: Arc<Shared>,
    on_fsync: Option<FsyncObserver>,
}

impl Wal {
    /// Opens the WAL in `dir` and starts a new segment after any existing one. Call `replay`
    /// first: segments from before this call are left for it and for `remove_segments_before`.
    pub fn open(
        dir: &Path,
        options: WalOptions,
        on_fsync: Option<FsyncObserver>,
    ) -> Result<Wal, WalError> {
        std::fs::create_dir_all(dir).map_err(|error| WalError::io(dir, error))?;
        let next_seq = list_segments(dir)?.last().copied().unwrap_or(0) + 1;
        let file = create_segment(dir, next_seq)?;
        let shared = Arc::new(Shared::default());
        shared.active_seq.store(next_seq, Ordering::Release);
        let (commands, receiver) = mpsc::channel();
        let mut writer = Writer {
            dir: dir.to_owned(),
            options,
            file,
            seq: next_seq,
            written_bytes: MAGIC.len() as u64,
            generation: 0,
            shared: shared.clone(),
            on_fsync,
        };
        std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|error| WalError::io(dir, error))?;
        Ok(Wal {
            dir: dir.to_owned(),
            commands,
            shared,
        })
    }

    /// Appends one record; resolves with the segment it landed in once it is durable.
    pub async fn append(&self, payload: Vec<u8>) -> Result<SegmentSeq, WalError> {
        self.submit(payload, None)?.durable().await
    }

    /// Queues one record behind every record queued before it, without waiting. With `expect`,
    /// the writer refuses it unless its generation is still `expect`.
    pub fn submit(
        &self,
        payload: Vec<u8>,
        expect: Option<Generation>,
    ) -> Result<Appending, WalError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::Append {
                payload,
                ack,
                expect,
            })
            .map_err(|_| WalError::Stopped)?;
        Ok(Appending {
            done,
            dir: self.dir.clone(),
        })
    }

    /// Closes the active segment and starts the next; returns the new active sequence number.
    pub async fn rotate(&self) -> Result<SegmentSeq, WalError> {
        self.submit_rotate()?.await.map_err(|_| WalError::Stopped)
    }

    /// Queues a rotation behind every record queued before it; records queued after it land in
    /// the new segment (generation + 1) unless starting that segment fails.
    pub fn submit_rotate(&self) -> Result<tokio::sync::oneshot::Receiver<SegmentSeq>, WalError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::Rotate { ack })
            .map_err(|_| WalError::Stopped)?;
        Ok(done)
    }

    pub fn active_segment(&self) -> SegmentSeq {
        self.shared.active_seq.load(Ordering::Acquire)
    }

    /// The writer's generation as of its last rotation or failed write.
    pub fn generation(&self) -> Generation {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Deletes every closed segment older than `seq`; the active segment is never deleted.
    pub fn remove_segments_before(&self, seq: SegmentSeq) -> Result<usize, WalError> {
        let limit = seq.min(self.active_segment());
        let mut removed = 0;
        for old in list_segments(&self.dir)?
            .into_iter()
            .filter(|old| *old < limit)
        {
            let path = segment_path(&self.dir, old);
            std::fs::remove_file(&path).map_err(|error| WalError::io(&path, error))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Bytes of all segment files, for the `andante_wal_bytes` gauge.
    pub fn disk_bytes(&self) -> u64 {
        let Ok(segments) = list_segments(&self.dir) else {
            return 0;
        };
        segments
            .into_iter()
            .filter_map(|seq| std::fs::metadata(segment_path(&self.dir, seq)).ok())
            .map(|metadata| metadata.len())
            .sum()
    }
}

fn create_segment(dir: &Path, seq: SegmentSeq) -> Result<File, WalError> {
    let path = segment_path(dir, seq);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|error| WalError::io(&path, error))?;
    file.write_all(MAGIC)
        .map_err(|error| WalError::io(&path, error))?;
    file.sync_all()
        .map_err(|error| WalError::io(&path, error))?;
    // The new file's directory entry must be durable too, or a crash could lose the segment.
    if let Ok(directory) = File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(file)
}

impl Writer {
    fn run(&mut self, receiver: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(1 << 20);
        let mut acks: Vec<Ack> = Vec::new();
        while let Ok(first) = receiver.recv() {
            let mut next = Some(first);
            // Drain whatever else is queued: every append in this round shares one fsync.
            while let Some(command) = next.take() {
                match command {
                    Command::Append {
                        ack,
                        expect: Some(expect),
                        ..
                    } if expect != self.generation => {
                        let _ = ack.send(Err(format!(
                            "record decided in wal generation {expect}, the writer is at {}",
                            self.generation
                        )));
                    }
                    Command::Append { payload, ack, .. } => {
                        match encode_record(&payload, &mut batch) {
                            Ok(()) => acks.push(ack),
                            Err(error) => {
                                // Dropped: what it defined is not on disk either.
                                self.next_generation();
                                let _ = ack.send(Err(error.to_string()));
                            }
                        }
                    }
                    Command::Rotate { ack } => {
                        self.commit(&mut batch, &mut acks);
                        self.rotate();
                        let _ = ack.send(self.seq);
                    }
                }
                if batch.len() < 8 << 20 {
                    next = receiver.try_recv().ok();
                }
            }
            self.commit(&mut batch, &mut acks);
            if self.written_bytes >= self.options.max_segment_bytes {
                self.rotate();
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<u8>, acks: &mut Vec<Ack>) {
        if acks.is_empty() {
            return;
        }
        let result = self.write_and_sync(batch);
        let outcome = result.map(|()| self.seq).map_err(|error| error.to_string());
        if let Err(message) = &outcome {
            tracing::error!(segment = self.seq, error = %message, "wal write failed; pushes are refused");
            // Before any ack goes out: what the failed records defined is not on disk.
            self.next_generation();
        }
        for ack in acks.drain(..) {
            let _ = ack.send(outcome.clone());
        }
        batch.clear();
    }

    fn write_and_sync(&mut self, batch: &[u8]) -> std::io::Result<()> {
        if let Err(error) = self.file.write_all(batch) {
            // A full disk can take part of the batch: cut the segment back to its last whole
            // record so the next batch (once there is room) starts well framed.
            use std::io::Seek;
            if self.file.set_len(self.written_bytes).is_ok() {
                let _ = self.file.seek(std::io::SeekFrom::Start(self.written_bytes));
            }
            return Err(error);
        }
        self.written_bytes += batch.len() as u64;
        if self.options.fsync {
            let started = Instant::now();
            self.file.sync_data()?;
            if let Some(observe) = &self.on_fsync {
                observe(started.elapsed());
            }
        }
        Ok(())
    }

    fn next_generation(&mut self) {
        self.generation += 1;
        self.shared
            .generation
            .store(self.generation, Ordering::Release);
    }

    /// Starts the next segment. The generation moves on even when that fails, so a writer that
    /// asked for the rotation can count on it.
    fn rotate(&mut self) {
        self.next_generation();
        match create_segment(&self.dir, self.seq + 1) {
            Ok(file) => {
                self.file = file;
                self.seq += 1;
                self.written_bytes = MAGIC.len() as u64;
                self.shared.active_seq.store(self.seq, Ordering::Release);
            }
            // Keep appending to the current segment; rotation is retried at the next threshold.
            Err(error) => tracing::error!(%error, "failed to start a new wal segment"),
        }
    }
}
