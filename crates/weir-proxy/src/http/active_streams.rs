//! The streams a downstream connection carries now, by their codec's key: what the connection
//! manager looks a decoded part's stream up in, and iterates when something happens to the
//! whole connection (its end, a reset, a timer, a close).

use crate::codec::StreamKey;
use crate::event::token::Id;

/// A codec's stream key and the worker's stream for it.
pub(crate) type Entry = (StreamKey, Id);

/// See the module documentation. Keys are unique: a codec never reuses one that is active.
///
/// ```text
///   Empty ──insert──> One ──insert──> Many ──remove (the last)──> Empty
///     ^                │
///     └────remove──────┘
/// ```
///
/// One stream is kept inline, so HTTP/1 (which never has more) allocates nothing and an idle
/// connection carries no more than the enum itself. `Many` keeps its allocation until it empties,
/// rather than moving back to `One` each time a stream ends.
#[derive(Debug, Clone, Default)]
pub(crate) enum ActiveStreams {
    #[default]
    Empty,
    One(Entry),
    /// Boxed: a thin pointer keeps the enum at 16 bytes, where a `Vec` would make it 32.
    #[expect(
        clippy::box_collection,
        reason = "every connection carries the enum; only HTTP/2 ever allocates the list"
    )]
    Many(Box<Vec<Entry>>),
}

impl ActiveStreams {
    /// The active streams, in the order they started.
    pub(crate) fn as_slice(&self) -> &[Entry] {
        match self {
            ActiveStreams::Empty => &[],
            ActiveStreams::One(entry) => std::slice::from_ref(entry),
            ActiveStreams::Many(entries) => entries,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The stream `key` names, if it is active.
    pub(crate) fn get(&self, key: StreamKey) -> Option<Id> {
        self.as_slice()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, id)| id)
    }

    /// The only active stream, when there is exactly one (HTTP/1's, whenever it has one): what
    /// a connection-level event such as a read or a write belongs to.
    pub(crate) fn sole(&self) -> Option<Id> {
        match self.as_slice() {
            [(_, id)] => Some(*id),
            _ => None,
        }
    }

    /// Adds a stream that just started.
    pub(crate) fn insert(&mut self, key: StreamKey, id: Id) {
        debug_assert!(
            self.get(key).is_none(),
            "stream key {key:?} is active already"
        );
        *self = match std::mem::take(self) {
            ActiveStreams::Empty => ActiveStreams::One((key, id)),
            ActiveStreams::One(first) => ActiveStreams::Many(Box::new(vec![first, (key, id)])),
            ActiveStreams::Many(mut entries) => {
                entries.push((key, id));
                ActiveStreams::Many(entries)
            }
        };
    }

    /// Removes the stream `key` names; returns it if it was active.
    pub(crate) fn remove(&mut self, key: StreamKey) -> Option<Id> {
        match self {
            ActiveStreams::Empty => None,
            ActiveStreams::One((k, id)) if *k == key => {
                let id = *id;
                *self = ActiveStreams::Empty;
                Some(id)
            }
            ActiveStreams::One(_) => None,
            ActiveStreams::Many(entries) => {
                let at = entries.iter().position(|(k, _)| *k == key)?;
                let (_, id) = entries.remove(at);
                if entries.is_empty() {
                    *self = ActiveStreams::Empty;
                }
                Some(id)
            }
        }
    }

    /// Removes the stream that started last, if any: how a closing connection takes each.
    pub(crate) fn pop(&mut self) -> Option<Entry> {
        let (key, _) = *self.as_slice().last()?;
        self.remove(key).map(|id| (key, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::token::GenSlab;

    fn ids(n: usize) -> Vec<Id> {
        let mut slab = GenSlab::new();
        (0..n).map(|i| slab.insert_with(|_| i)).collect()
    }

    #[test]
    fn one_stream_is_inline_and_leaves_the_container_empty() {
        let id = ids(1)[0];
        let mut streams = ActiveStreams::default();
        assert!(streams.is_empty() && streams.sole().is_none());
        streams.insert(StreamKey(1), id);
        assert!(matches!(streams, ActiveStreams::One(_)));
        assert_eq!(streams.get(StreamKey(1)), Some(id));
        assert_eq!(streams.get(StreamKey(2)), None);
        assert_eq!(streams.sole(), Some(id));
        assert_eq!(
            streams.remove(StreamKey(2)),
            None,
            "another key removes nothing"
        );
        assert_eq!(streams.remove(StreamKey(1)), Some(id));
        assert!(matches!(streams, ActiveStreams::Empty));
    }

    #[test]
    fn many_streams_are_found_by_key_and_removed_in_any_order() {
        let id = ids(4);
        let mut streams = ActiveStreams::default();
        for (i, &sid) in id.iter().enumerate() {
            // HTTP/2's client streams: odd ids.
            streams.insert(StreamKey(2 * i as u32 + 1), sid);
        }
        assert_eq!(streams.as_slice().len(), 4);
        assert_eq!(
            streams.sole(),
            None,
            "no stream is the connection's only one"
        );
        for (i, &sid) in id.iter().enumerate() {
            assert_eq!(streams.get(StreamKey(2 * i as u32 + 1)), Some(sid));
        }
        assert_eq!(streams.remove(StreamKey(3)), Some(id[1]));
        assert_eq!(streams.remove(StreamKey(3)), None, "removed once");
        let keys: Vec<u32> = streams.as_slice().iter().map(|(k, _)| k.0).collect();
        assert_eq!(keys, [1, 5, 7], "the others keep their order");
        assert_eq!(streams.pop(), Some((StreamKey(7), id[3])));
        assert_eq!(streams.remove(StreamKey(1)), Some(id[0]));
        assert_eq!(streams.sole(), Some(id[2]));
        assert_eq!(streams.pop(), Some((StreamKey(5), id[2])));
        assert!(
            matches!(streams, ActiveStreams::Empty),
            "the allocation is gone"
        );
        assert_eq!(streams.pop(), None);
    }

    #[test]
    fn the_container_is_no_bigger_than_an_id_and_a_tag() {
        // An idle keep-alive connection carries it (≤ 512 B per connection, measured).
        assert!(std::mem::size_of::<ActiveStreams>() <= 16);
    }
}
