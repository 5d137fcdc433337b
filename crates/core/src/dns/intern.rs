//! Shared copies of the DNS names seen recently, so that a name the traffic
//! repeats (every query of a resolver's search walk, its response, the
//! lookup's candidates) becomes an `Arc<str>` without allocating.
//!
//! Bounded: when `max` names are held the set is emptied and starts over,
//! so a flood of distinct names costs one allocation per name (as without
//! the set) and at most `max` names of memory.

use std::sync::Arc;

use crate::hash::HashSet;

#[derive(Debug)]
pub struct Interner {
    names: HashSet<Arc<str>>,
    max: usize,
}

impl Interner {
    pub fn new(max: usize) -> Self {
        Interner {
            names: HashSet::default(),
            max: max.max(1),
        }
    }

    /// The shared copy of `name`.
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        if self.names.len() >= self.max {
            self.names.clear();
        }
        self.names.insert(shared.clone());
        shared
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_share_one_copy_and_the_set_is_bounded() {
        let mut i = Interner::new(3);
        let a = i.get("a.example");
        let again = i.get("a.example");
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(&*a, "a.example");
        for n in ["b", "c", "d", "e", "f", "g"] {
            assert_eq!(&*i.get(n), n);
            assert!(i.len() <= 3, "{}", i.len());
        }
        // Emptied and refilled: a name is still read back as itself.
        assert_eq!(&*i.get("a.example"), "a.example");
        assert!(!i.is_empty());
    }
}
