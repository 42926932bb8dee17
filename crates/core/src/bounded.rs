//! A map that never grows past its bound: services that remember what
//! they saw on the log (the policy service's undecided drafts, the
//! ledger's open drafts) keep at most so many entries, forgetting the
//! oldest inserted first, so input can never make them grow without end.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// At most `cap` entries; inserting one more forgets the oldest one still
/// held. Removing an entry frees its place at once; the insertion order
/// kept for forgetting is compacted so it never holds more than `2 × cap`.
#[derive(Debug, Clone)]
pub struct FifoMap<K, V> {
    map: HashMap<K, (u64, V)>,
    order: VecDeque<(u64, K)>,
    inserted: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> FifoMap<K, V> {
    pub fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            inserted: 0,
            cap: cap.max(1),
        }
    }

    /// Inserts `value` under `key` unless the key is present (then nothing
    /// changes and it returns false).
    pub fn insert_new(&mut self, key: K, value: V) -> bool {
        if self.map.contains_key(&key) {
            return false;
        }
        self.inserted += 1;
        self.order.push_back((self.inserted, key.clone()));
        self.map.insert(key, (self.inserted, value));
        while self.map.len() > self.cap {
            let Some((n, k)) = self.order.pop_front() else { break };
            if self.map.get(&k).is_some_and(|(m, _)| *m == n) {
                self.map.remove(&k);
            }
        }
        if self.order.len() > 2 * self.cap {
            let map = &self.map;
            self.order.retain(|(n, k)| map.get(k).is_some_and(|(m, _)| m == n));
        }
        true
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key).map(|(_, v)| v)
    }

    /// The values held, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.map.values_mut().map(|(_, v)| v)
    }

    /// The entries held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (_, v))| (k, v))
    }

    /// The entries held, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.map.iter_mut().map(|(k, (_, v))| (k, v))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_keeps_the_newest_and_stays_bounded_under_churn() {
        let mut m = FifoMap::new(3);
        for i in 0..10 {
            assert!(m.insert_new(i, i * 10));
            if i % 2 == 0 {
                m.remove(&i);
            }
            assert!(m.order.len() <= 6 && m.len() <= 3);
        }
        assert_eq!(m.get(&9), Some(&90));
        assert!(m.get(&1).is_none(), "the oldest are forgotten");
        assert!(!m.insert_new(9, 0), "present: unchanged");
        assert_eq!(m.get(&9), Some(&90));
    }

    #[test]
    fn removed_entries_free_their_place() {
        let mut m = FifoMap::new(3);
        m.insert_new("old", 1);
        for i in 0..100 {
            m.insert_new("churn", i);
            m.remove(&"churn");
        }
        assert_eq!(m.get(&"old"), Some(&1), "only live entries count towards the bound");
        assert!(m.order.len() <= 6);
    }
}
