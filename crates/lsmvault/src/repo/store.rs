//! Storing a stream of bytes as content-defined chunks: the one path by which
//! file content (backups) and WAL segments (the WAL archive) enter the store.

use crate::codec::chunker::{CutFinder, StreamChunker};
use crate::error::Result;
use crate::format::pack::BlobKind;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::PackWriter;

/// What [`store_stream`] stored.
pub struct StoredContent {
    /// Ids of the stream's chunks in order, whether newly stored or already
    /// in the repository.
    pub chunks: Vec<Id>,
    /// Whole-content digest; `None` when the stream outgrew its size hint's
    /// single chunk (so it was not hashed whole): the caller reads it again.
    pub digest: Option<Id>,
    /// Bytes read from the stream (differs from the size hint when a file
    /// changed while it was read).
    pub size: u64,
}

/// Chunks a stream and stores its new chunks. Files no longer than the
/// minimum chunk are one chunk, whose id is the whole-content digest: the
/// second hash pass is skipped for them. The outer `Result` is a repository
/// failure, the inner one a read error of the stream.
pub fn store_stream(
    reader: impl std::io::Read,
    size_hint: u64,
    finder: &CutFinder,
    writer: &PackWriter<'_>,
    progress: &dyn Progress,
) -> Result<std::io::Result<StoredContent>> {
    let keys = writer.keys();
    let min_chunk = finder.min_size() as u64;
    let mut hasher = (size_hint > min_chunk).then(|| keys.hasher());
    let mut chunker = StreamChunker::new(finder, reader, size_hint);
    let mut chunks = Vec::new();
    let mut size = 0u64;
    loop {
        let chunk = match chunker.next_chunk() {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => return Ok(Err(error)),
        };
        let id = keys.blob_id(chunk);
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(chunk);
        }
        writer.add(id, BlobKind::Data, chunk)?;
        chunks.push(id);
        size += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
    }
    let digest = match (chunks.as_slice(), hasher) {
        ([], _) => Some(keys.blob_id(b"")),
        ([only], _) => Some(*only),
        (_, Some(hasher)) => Some(Id(*hasher.finalize().as_bytes())),
        (_, None) => None,
    };
    Ok(Ok(StoredContent {
        chunks,
        digest,
        size,
    }))
}
