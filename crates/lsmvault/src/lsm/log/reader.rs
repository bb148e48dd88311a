//! The logical reader: reassembles fragments into logical records, keeps the
//! header format and log number of the live records, and classifies where and why
//! reading stops (see the module documentation of [`super`]).
//!
//! Invariant: once a problem is found nothing after it is read (RocksDB's
//! `kPointInTimeRecovery`); [`Reader::step`] returns the tail instead of a position.

use super::record::{
    describe_type, has_recyclable_variant, parse_physical, record_type, FramingProblem, Physical,
    PhysicalRecord,
};

/// What a logical record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A data record (FULL, or FIRST..LAST reassembled): a serialized write batch in a
    /// WAL, a version edit in a MANIFEST. Compressed if the log starts with a
    /// [`RecordKind::SetCompressionType`] record naming a compression.
    Data,
    /// Type 9: the compression of the following data records (payload: u32 LE, a
    /// RocksDB `CompressionType`, e.g. 7 for zstd).
    SetCompressionType,
    /// Types 10/11: user-defined timestamp sizes of column families.
    UserDefinedTimestampSize,
    /// Types 130/131: the predecessor WAL's number, size and last sequence number.
    PredecessorWalInfo,
    /// An unknown type with bit 7 set, which readers may ignore.
    Ignorable {
        /// The physical record type.
        record_type: u8,
    },
}

/// One logical record read from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalRecord {
    /// Offset of the header of the record's first physical record.
    pub start_offset: u64,
    /// Offset just after the record's last physical record: a safe truncation point.
    pub end_offset: u64,
    /// What the record is.
    pub kind: RecordKind,
    /// The payload, reassembled from its fragments.
    pub payload: Vec<u8>,
}

/// How the readable part of a log ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// At a record boundary or in skipped padding, or at stale data of a recycled file.
    Clean,
    /// Inside a header, a record body, or a fragmented record: an interrupted write.
    Torn {
        /// Where the incomplete data begins.
        offset: u64,
        /// What was incomplete, naming offsets.
        reason: String,
    },
    /// At damaged data; nothing from `offset` on is trusted.
    Corrupt {
        /// Where the untrusted data begins (the offending physical record, or the first
        /// fragment of the fragmented record it interrupts).
        offset: u64,
        /// What is wrong, naming offsets.
        reason: String,
    },
}

impl Tail {
    /// Whether the log ended cleanly.
    pub fn is_clean(&self) -> bool {
        matches!(self, Tail::Clean)
    }

    /// Where the torn or corrupt data begins; `None` for a clean tail.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Tail::Clean => None,
            Tail::Torn { offset, .. } | Tail::Corrupt { offset, .. } => Some(*offset),
        }
    }
}

/// Everything [`read_log`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReadOutcome {
    /// The trusted logical records, in file order.
    pub records: Vec<LogicalRecord>,
    /// How the trusted part ends.
    pub tail: Tail,
    /// Offset of the first record left over from a recycled file's previous life (a
    /// recyclable record of another log number, or a legacy-format record after
    /// recyclable ones), where reading stopped; `None` when there was none.
    pub stale_data_offset: Option<u64>,
}

impl LogReadOutcome {
    /// End of the last trusted record (0 if none): the largest safe truncation point.
    pub fn last_record_end(&self) -> u64 {
        self.records.last().map_or(0, |record| record.end_offset)
    }

    /// The data records (write batches in a WAL).
    pub fn data_records(&self) -> impl Iterator<Item = &LogicalRecord> {
        self.records
            .iter()
            .filter(|record| record.kind == RecordKind::Data)
    }

    /// The compression the log's SetCompressionType record names (RocksDB
    /// `CompressionType`; 0 is none), or `None` without such a record. A record too
    /// short to hold the u32 reads as `None` too.
    pub fn compression_type(&self) -> Option<u32> {
        self.records
            .iter()
            .find(|record| record.kind == RecordKind::SetCompressionType)
            .and_then(|record| record.payload.get(0..4))
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .map(u32::from_le_bytes)
    }
}

/// Reads a whole log file's content.
///
/// `log_number` is the file's number (`000123.log` → 123). Recyclable records whose
/// log number differs from its low 32 bits are stale data of the file's previous life:
/// reading stops there, cleanly. Without it, the log number of the first recyclable
/// record is taken as the file's (pass it whenever the file name is known: a file whose
/// new life wrote nothing yet would otherwise be read as live).
///
/// Never fails and never panics: problems end the reading and are described by the
/// outcome's [`Tail`]; see the module documentation.
pub fn read_log(bytes: &[u8], log_number: Option<u64>) -> LogReadOutcome {
    let mut reader = Reader {
        bytes,
        // The header stores the low 32 bits only: the truncation is the format's.
        expected_log_number: log_number.map(|number| number as u32),
        format: None,
        pending: None,
        records: Vec::new(),
        compression_record_seen: false,
        stale_data_offset: None,
    };
    let tail = reader.run();
    LogReadOutcome {
        records: reader.records,
        tail,
        stale_data_offset: reader.stale_data_offset.map(offset64),
    }
}

/// The header format a log's live records use, fixed by its first record of a type
/// that has both forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderFormat {
    Legacy,
    Recyclable,
}

/// A fragmented record whose LAST fragment has not been read yet.
struct Pending {
    start: usize,
    payload: Vec<u8>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    expected_log_number: Option<u32>,
    format: Option<HeaderFormat>,
    pending: Option<Pending>,
    records: Vec<LogicalRecord>,
    compression_record_seen: bool,
    stale_data_offset: Option<usize>,
}

fn offset64(offset: usize) -> u64 {
    offset as u64
}

impl Reader<'_> {
    /// Where untrusted data begins when a problem is found at `physical`.
    fn stop_offset(&self, physical: usize) -> u64 {
        offset64(
            self.pending
                .as_ref()
                .map_or(physical, |pending| pending.start),
        )
    }

    fn torn(&self, physical: usize, reason: String) -> Tail {
        Tail::Torn {
            offset: self.stop_offset(physical),
            reason,
        }
    }

    fn corrupt(&self, physical: usize, reason: String) -> Tail {
        Tail::Corrupt {
            offset: self.stop_offset(physical),
            reason,
        }
    }

    /// Stops at stale data of a recycled file found at `physical`.
    fn stale(&mut self, physical: usize, what: String) -> Tail {
        self.stale_data_offset = Some(physical);
        match &self.pending {
            None => Tail::Clean,
            Some(pending) => Tail::Torn {
                offset: offset64(pending.start),
                reason: format!(
                    "fragmented record starting at offset {} ends at {what} at offset {physical} \
                     (stale data of a recycled log file)",
                    pending.start
                ),
            },
        }
    }

    /// A record that is not a continuation fragment ends any pending fragmented record.
    /// An empty pending one is dropped, as RocksDB does (old writers could leave an
    /// empty FIRST fragment at a block's end); a non-empty one is corruption.
    fn end_pending(&mut self, physical: usize, record_type: u8) -> Result<(), Tail> {
        match self.pending.take() {
            Some(pending) if !pending.payload.is_empty() => {
                let reason = format!(
                    "fragmented record starting at offset {} has no last fragment: a {} \
                     record follows at offset {physical}",
                    pending.start,
                    describe_type(record_type)
                );
                self.pending = Some(pending);
                Err(self.corrupt(physical, reason))
            }
            _ => Ok(()),
        }
    }

    fn push(&mut self, start: usize, end: usize, kind: RecordKind, payload: Vec<u8>) {
        self.records.push(LogicalRecord {
            start_offset: offset64(start),
            end_offset: offset64(end),
            kind,
            payload,
        });
    }

    fn run(&mut self) -> Tail {
        let mut position = 0usize;
        loop {
            match self.step(position) {
                Ok(next) => position = next,
                Err(tail) => return tail,
            }
        }
    }

    /// Reads the physical record (or padding) at `position`; returns where the next
    /// one starts, or how reading ends.
    fn step(&mut self, position: usize) -> Result<usize, Tail> {
        if position >= self.bytes.len() {
            return Err(self.end_of_log(position));
        }
        let record = match parse_physical(self.bytes, position) {
            Ok(Physical::Padding { next }) => return Ok(next),
            Ok(Physical::Preallocated { next }) => return self.preallocated(position, next),
            Ok(Physical::Record(record)) => record,
            Err(problem) => return Err(self.framing_problem(position, problem)),
        };
        self.check_origin(position, &record)?;
        self.accept(position, &record)?;
        Ok(record.end)
    }

    /// The log ends at `position`: cleanly, unless inside a fragmented record.
    fn end_of_log(&self, position: usize) -> Tail {
        match &self.pending {
            None => Tail::Clean,
            Some(pending) => self.torn(
                position,
                format!(
                    "log ends at offset {} inside the fragmented record starting at offset {}",
                    self.bytes.len(),
                    pending.start
                ),
            ),
        }
    }

    /// Preallocated space at `position`: skipped up to `next` (the end of its block),
    /// unless a fragmented record is pending. Then the writer died before writing the
    /// rest (torn) when nothing but zeros follows, and data after the zeros makes
    /// them a hole (corrupt).
    fn preallocated(&self, position: usize, next: usize) -> Result<usize, Tail> {
        let Some(pending) = &self.pending else {
            return Ok(next);
        };
        let rest_is_zero = self
            .bytes
            .get(position..)
            .is_some_and(|rest| rest.iter().all(|&byte| byte == 0));
        let reason = format!(
            "fragmented record starting at offset {} is followed by preallocated (zero) \
             space at offset {position}",
            pending.start
        );
        Err(if rest_is_zero {
            self.torn(position, reason)
        } else {
            self.corrupt(position, reason)
        })
    }

    fn framing_problem(&self, position: usize, problem: FramingProblem) -> Tail {
        match problem {
            FramingProblem::Torn(reason) => self.torn(position, reason),
            FramingProblem::Corrupt(reason) => self.corrupt(position, reason),
            FramingProblem::ChecksumMismatch(reason) => {
                let recycled_note = if self.format == Some(HeaderFormat::Recyclable) {
                    " (in a recycled log file, an interrupted overwrite of older data looks \
                     the same)"
                } else {
                    ""
                };
                self.corrupt(position, format!("{reason}{recycled_note}"))
            }
        }
    }

    /// Checks that a checksum-valid record belongs to this life of the file (its log
    /// number, its header format) and fixes the log's header format with the first
    /// record of a type that has both forms.
    fn check_origin(&mut self, position: usize, record: &PhysicalRecord) -> Result<(), Tail> {
        let kind_byte = record.record_type;
        if let Some(number) = record.log_number {
            if self.format == Some(HeaderFormat::Legacy) {
                return Err(self.corrupt(
                    position,
                    format!(
                        "recyclable {} record at offset {position} in a log whose records \
                         have legacy headers",
                        describe_type(kind_byte)
                    ),
                ));
            }
            let expected = *self.expected_log_number.get_or_insert(number);
            if number != expected {
                return Err(self.stale(
                    position,
                    format!(
                        "a {} record of log number {number} (expected {expected})",
                        describe_type(kind_byte)
                    ),
                ));
            }
        } else if self.format == Some(HeaderFormat::Recyclable) && has_recyclable_variant(kind_byte)
        {
            // A recycling writer uses recyclable headers for these types: this record
            // is left over from a legacy-format previous life of the file.
            return Err(self.stale(
                position,
                format!(
                    "a legacy-format {} record after recyclable ones",
                    describe_type(kind_byte)
                ),
            ));
        }

        if has_recyclable_variant(kind_byte) {
            self.format = Some(HeaderFormat::Legacy);
        } else if record.log_number.is_some() {
            self.format = Some(HeaderFormat::Recyclable);
        }
        Ok(())
    }

    /// Adds a physical record of this log to the logical records, by its type.
    fn accept(&mut self, position: usize, record: &PhysicalRecord) -> Result<(), Tail> {
        let kind_byte = record.record_type;
        let (fragment, record_end) = (record.fragment, record.end);
        match kind_byte {
            record_type::FULL | record_type::RECYCLABLE_FULL => {
                self.end_pending(position, kind_byte)?;
                self.push(position, record_end, RecordKind::Data, fragment.to_vec());
            }
            record_type::FIRST | record_type::RECYCLABLE_FIRST => {
                self.end_pending(position, kind_byte)?;
                self.pending = Some(Pending {
                    start: position,
                    payload: fragment.to_vec(),
                });
            }
            record_type::MIDDLE | record_type::RECYCLABLE_MIDDLE => match &mut self.pending {
                Some(pending) => pending.payload.extend_from_slice(fragment),
                None => {
                    return Err(self.corrupt(
                        position,
                        format!("middle fragment at offset {position} without a first fragment"),
                    ))
                }
            },
            record_type::LAST | record_type::RECYCLABLE_LAST => match self.pending.take() {
                Some(mut pending) => {
                    pending.payload.extend_from_slice(fragment);
                    self.push(pending.start, record_end, RecordKind::Data, pending.payload);
                }
                None => {
                    return Err(self.corrupt(
                        position,
                        format!("last fragment at offset {position} without a first fragment"),
                    ))
                }
            },
            record_type::SET_COMPRESSION_TYPE => {
                self.check_set_compression_type(position)?;
                self.compression_record_seen = true;
                let kind = RecordKind::SetCompressionType;
                self.push(position, record_end, kind, fragment.to_vec());
            }
            other => {
                let Some(kind) = meta_record_kind(other) else {
                    return Err(self.corrupt(
                        position,
                        format!("unknown record type {other} at offset {position}"),
                    ));
                };
                self.end_pending(position, kind_byte)?;
                self.push(position, record_end, kind, fragment.to_vec());
            }
        }
        Ok(())
    }

    /// A SetCompressionType record must be the log's first record, and its only one.
    fn check_set_compression_type(&self, position: usize) -> Result<(), Tail> {
        if self.compression_record_seen {
            return Err(self.corrupt(
                position,
                format!("second SetCompressionType record at offset {position}"),
            ));
        }
        if !self.records.is_empty() || self.pending.is_some() {
            return Err(self.corrupt(
                position,
                format!("SetCompressionType record at offset {position} is not the first record"),
            ));
        }
        Ok(())
    }
}

/// The kind of a single-physical-record meta record other than SetCompressionType;
/// `None` for a type that is corruption.
fn meta_record_kind(kind_byte: u8) -> Option<RecordKind> {
    match kind_byte {
        record_type::USER_DEFINED_TIMESTAMP_SIZE
        | record_type::RECYCLABLE_USER_DEFINED_TIMESTAMP_SIZE => {
            Some(RecordKind::UserDefinedTimestampSize)
        }
        record_type::PREDECESSOR_WAL_INFO | record_type::RECYCLABLE_PREDECESSOR_WAL_INFO => {
            Some(RecordKind::PredecessorWalInfo)
        }
        other if other & record_type::SAFE_TO_IGNORE_MASK != 0 => {
            Some(RecordKind::Ignorable { record_type: other })
        }
        _ => None,
    }
}
