//! Which byte ranges of which packs a restore reads: the blobs it needs from
//! one pack, sorted by offset, merged into one range when the gap between
//! them is small. On an object store each range is one ranged GET, and a
//! request costs a round trip, so reading a little unneeded data between two
//! blobs is cheaper than a second request.
//!
//! Pure planning, no I/O. Invariants (checked by the property tests below):
//! every wanted blob lies inside exactly one range of its pack; the ranges
//! of a pack do not overlap; within a range, no gap between consecutive
//! wanted blobs exceeds [`MAX_GAP`]; a range is at most [`MAX_RANGE`] long
//! unless one blob alone (or blobs overlapping it, as only a forged index
//! can place them) is longer, so the memory a range needs is bounded.

use std::collections::BTreeMap;

use crate::id::Id;

/// The largest gap between two wanted blobs of one pack that is read
/// through (and thrown away) rather than split into two requests. At
/// 100 Mbit/s 1 MiB costs about 80 ms, about what a second request costs on
/// a remote object store.
pub(super) const MAX_GAP: u64 = 1 << 20;

/// The longest range read in one request: a whole pack (16 MiB by default,
/// plus one 4 MiB chunk at most) fits.
pub(super) const MAX_RANGE: u64 = 24 << 20;

/// A blob the restore needs, where its pack holds it; `tag` is the caller's
/// handle for it (its position in the caller's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wanted {
    pub(super) pack: Id,
    pub(super) offset: u64,
    pub(super) length: u64,
    pub(super) tag: usize,
}

/// One read: `length` bytes of `pack` from `offset`, holding the blobs
/// tagged `blobs` (in offset order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReadRange {
    pub(super) pack: Id,
    pub(super) offset: u64,
    pub(super) length: u64,
    pub(super) blobs: Vec<usize>,
}

impl ReadRange {
    fn end(&self) -> u64 {
        self.offset + self.length
    }
}

/// The ranges that read every wanted blob, ordered by the smallest tag each
/// holds (a caller that tags blobs in the order files need them gets the
/// ranges in that order too).
pub(super) fn plan_ranges(wanted: impl IntoIterator<Item = Wanted>) -> Vec<ReadRange> {
    let mut by_pack: BTreeMap<Id, Vec<Wanted>> = BTreeMap::new();
    for blob in wanted {
        by_pack.entry(blob.pack).or_default().push(blob);
    }
    let mut ranges = Vec::new();
    for (pack, mut blobs) in by_pack {
        blobs.sort_by_key(|blob| (blob.offset, blob.length));
        let mut current: Option<ReadRange> = None;
        for blob in blobs {
            let end = blob.offset + blob.length;
            if let Some(range) = current.as_mut() {
                let overlaps = blob.offset < range.end();
                let close = blob.offset - range.end().min(blob.offset) <= MAX_GAP;
                let fits = end.max(range.end()) - range.offset <= MAX_RANGE;
                if overlaps || (close && fits) {
                    range.length = end.max(range.end()) - range.offset;
                    range.blobs.push(blob.tag);
                    continue;
                }
                ranges.extend(current.take());
            }
            current = Some(ReadRange {
                pack,
                offset: blob.offset,
                length: blob.length,
                blobs: vec![blob.tag],
            });
        }
        ranges.extend(current);
    }
    ranges.sort_by_key(|range| range.blobs.iter().min().copied());
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pack(number: u8) -> Id {
        Id([number; 32])
    }

    fn wanted(pack_number: u8, offset: u64, length: u64, tag: usize) -> Wanted {
        Wanted {
            pack: pack(pack_number),
            offset,
            length,
            tag,
        }
    }

    #[test]
    fn close_blobs_merge_and_far_ones_split() {
        let ranges = plan_ranges([
            wanted(1, 0, 100, 0),
            wanted(1, 100 + MAX_GAP, 50, 1),
            wanted(1, 150 + 2 * MAX_GAP + 1, 10, 2),
            wanted(2, 7, 3, 3),
        ]);
        assert_eq!(ranges.len(), 3, "{ranges:?}");
        assert_eq!((ranges[0].offset, ranges[0].length), (0, 150 + MAX_GAP));
        assert_eq!(ranges[0].blobs, vec![0, 1]);
        assert_eq!(ranges[1].blobs, vec![2]);
        assert_eq!(
            (ranges[2].pack, ranges[2].blobs.clone()),
            (pack(2), vec![3])
        );
    }

    #[test]
    fn a_range_stops_growing_at_the_maximum() {
        let chunk = 4 << 20;
        let blobs: Vec<Wanted> = (0..10)
            .map(|n| wanted(1, n * chunk, chunk, n as usize))
            .collect();
        let ranges = plan_ranges(blobs);
        assert!(ranges.iter().all(|range| range.length <= MAX_RANGE));
        assert_eq!(ranges.len(), 2, "{ranges:?}");
    }

    #[test]
    fn ranges_come_in_the_order_of_their_first_tag() {
        let ranges = plan_ranges([wanted(9, 0, 1, 0), wanted(1, 0, 1, 1), wanted(9, 1, 1, 2)]);
        assert_eq!(ranges[0].pack, pack(9));
        assert_eq!(ranges[1].pack, pack(1));
    }

    fn blobs() -> impl Strategy<Value = Vec<Wanted>> {
        proptest::collection::vec((0u8..3, 0u64..40 << 20, 0u64..5 << 20), 0..60).prop_map(
            |blobs| {
                blobs
                    .into_iter()
                    .enumerate()
                    .map(|(tag, (pack_number, offset, length))| {
                        wanted(pack_number, offset, length, tag)
                    })
                    .collect()
            },
        )
    }

    proptest! {
        #[test]
        fn every_blob_is_in_exactly_one_range_and_ranges_are_disjoint(blobs in blobs()) {
            let ranges = plan_ranges(blobs.clone());
            for blob in &blobs {
                let holding: Vec<&ReadRange> = ranges
                    .iter()
                    .filter(|range| range.blobs.contains(&blob.tag))
                    .collect();
                prop_assert_eq!(holding.len(), 1);
                let range = holding[0];
                prop_assert_eq!(range.pack, blob.pack);
                prop_assert!(range.offset <= blob.offset);
                prop_assert!(blob.offset + blob.length <= range.end());
            }
            let listed: usize = ranges.iter().map(|range| range.blobs.len()).sum();
            prop_assert_eq!(listed, blobs.len());
            for (number, range) in ranges.iter().enumerate() {
                for other in &ranges[number + 1..] {
                    let disjoint = range.pack != other.pack
                        || range.end() <= other.offset
                        || other.end() <= range.offset;
                    prop_assert!(disjoint, "{:?} overlaps {:?}", range, other);
                }
            }
        }

        #[test]
        fn gaps_stay_small_and_ranges_bounded(blobs in blobs()) {
            let by_tag = |tag: usize| blobs[tag];
            for range in plan_ranges(blobs.clone()) {
                let mut covered = range.offset;
                for (number, tag) in range.blobs.iter().enumerate() {
                    let blob = by_tag(*tag);
                    let end = blob.offset + blob.length;
                    prop_assert!(blob.offset.saturating_sub(covered) <= MAX_GAP);
                    // Past the maximum only by a blob overlapping what came before.
                    if number > 0 && end > covered && end - range.offset > MAX_RANGE {
                        prop_assert!(blob.offset < covered, "{:?}", range);
                    }
                    covered = covered.max(end);
                }
                prop_assert_eq!(covered, range.end());
            }
        }
    }
}
