//! What a mirror's record carries besides its key, value and expiry, so that it can be
//! written back into Redis: its kind and its bucket, in 16 bits.
//!
//! Only a store that keeps full records (a mirror with write-back on) keeps tags; the
//! others take [`Tag::NONE`] and drop it.

/// A record's kind and bucket, packed: the bucket in the low [`BUCKET_BITS`] bits, the
/// kind's code above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct Tag(u16);

const BUCKET_BITS: u32 = 11;
const BUCKET_MASK: u16 = (1 << BUCKET_BITS) - 1;
/// No bucket known: applied by the mirror's own write before it was noted, or a v1
/// key; never written back.
const NO_BUCKET: u16 = BUCKET_MASK;
/// Seen in more than one bucket (a session, a token revoked without its subject):
/// written back into every bucket that lost its data.
const EVERY_BUCKET: u16 = BUCKET_MASK - 1;

/// Where a tagged record belongs.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buckets {
    One(u32),
    Every,
}

impl Tag {
    /// No kind or bucket known.
    pub(crate) const NONE: Tag = Tag(NO_BUCKET);

    /// Its bits, to keep in an atomic.
    pub(crate) const fn bits(self) -> u16 {
        self.0
    }

    /// A tag from its [`bits`](Self::bits).
    pub(crate) const fn from_bits(bits: u16) -> Self {
        Self(bits)
    }

    /// A record of kind `kind` (0 to 3, see `Kind`'s codes in the ledger) seen in
    /// `bucket` (below `MAX_BUCKETS`, 1024).
    #[cfg(feature = "redis")]
    pub(crate) fn new(kind: u8, bucket: u32) -> Self {
        let bucket = u16::try_from(bucket)
            .ok()
            .filter(|bucket| *bucket < EVERY_BUCKET)
            .unwrap_or(EVERY_BUCKET);
        Self((u16::from(kind & 0b11) << BUCKET_BITS) | bucket)
    }

    /// The kind's code, as given to [`Tag::new`].
    #[cfg(feature = "redis")]
    pub(crate) fn kind(self) -> u8 {
        (self.0 >> BUCKET_BITS) as u8
    }

    /// Its bucket or buckets; `None` when none is known.
    #[cfg(feature = "redis")]
    pub(crate) fn buckets(self) -> Option<Buckets> {
        match self.0 & BUCKET_MASK {
            NO_BUCKET => None,
            EVERY_BUCKET => Some(Buckets::Every),
            bucket => Some(Buckets::One(u32::from(bucket))),
        }
    }

    /// What a record tagged `self` is tagged after being seen again as `seen`: in
    /// another bucket, it belongs to every bucket (writing a live revocation back into a
    /// bucket that did not hold it only ever refuses more). Seen without a tag, it keeps
    /// its own.
    pub(crate) fn merge(self, seen: Tag) -> Tag {
        let (ours, theirs) = (self.0 & BUCKET_MASK, seen.0 & BUCKET_MASK);
        if theirs == NO_BUCKET {
            return self;
        }
        let bucket = if ours == NO_BUCKET || ours == theirs {
            theirs
        } else {
            EVERY_BUCKET
        };
        Tag((seen.0 & !BUCKET_MASK) | bucket)
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[test]
    fn a_record_seen_in_a_second_bucket_belongs_to_every_bucket() {
        let three = Tag::new(1, 3);
        assert_eq!(three.kind(), 1);
        assert_eq!(three.buckets(), Some(Buckets::One(3)));
        assert_eq!(Tag::NONE.buckets(), None);
        assert_eq!(Tag::NONE.merge(three), three);
        assert_eq!(three.merge(Tag::NONE), three);
        assert_eq!(three.merge(three), three);
        let every = three.merge(Tag::new(1, 5));
        assert_eq!((every.kind(), every.buckets()), (1, Some(Buckets::Every)));
        assert_eq!(every.merge(Tag::new(1, 3)).buckets(), Some(Buckets::Every));
        assert_eq!(Tag::new(0, 1023).buckets(), Some(Buckets::One(1023)));
    }
}
