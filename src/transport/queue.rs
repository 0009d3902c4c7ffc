//! The priority queue of batch entries waiting to be put on a stream (TP-24).
//!
//! A binary max-heap on the entry's priority, kept in a plain vector so that "take
//! everything" hands the entries over in heap-array order, as client-go's
//! `internal/client/priority_queue.go` `PriorityQueue` does. Canceled entries are dropped by
//! [`PriorityQueue::clean`]; the high-priority threshold lives in [`HIGH_TASK_PRIORITY`].

/// Entries whose priority is at least this are "high priority": they are always sent, even
/// when the stream's concurrency limit is reached (client-go `highTaskPriority`).
pub const HIGH_TASK_PRIORITY: u64 = 10;

/// What the queue needs to know about an item.
pub trait QueueItem {
    /// The item's priority; higher is served first.
    fn priority(&self) -> u64;
    /// Whether the item's caller has given up on it.
    fn is_canceled(&self) -> bool;
}

/// A max-heap on [`QueueItem::priority`] (client-go `PriorityQueue`).
#[derive(Debug)]
pub struct PriorityQueue<T> {
    items: Vec<T>,
}

impl<T> Default for PriorityQueue<T> {
    fn default() -> Self {
        PriorityQueue { items: Vec::new() }
    }
}

impl<T: QueueItem> PriorityQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds an item.
    pub fn push(&mut self, item: T) {
        self.items.push(item);
        let last = self.items.len() - 1;
        self.up(last);
    }

    /// Removes and returns the highest-priority item.
    pub fn pop(&mut self) -> Option<T> {
        let n = self.items.len();
        if n == 0 {
            return None;
        }
        self.items.swap(0, n - 1);
        let item = self.items.pop();
        if !self.items.is_empty() {
            self.down(0);
        }
        item
    }

    /// Takes up to `n` items: every item, in heap-array order, when `n` covers the whole
    /// queue; otherwise the `n` highest-priority ones, highest first (client-go `Take`).
    /// Takes nothing when `n` is 0.
    pub fn take(&mut self, n: usize) -> Vec<T> {
        if n == 0 {
            return Vec::new();
        }
        if n >= self.items.len() {
            return std::mem::take(&mut self.items);
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            if let Some(item) = self.pop() {
                out.push(item);
            }
        }
        out
    }

    /// The priority of the head item, 0 when empty (client-go `highestPriority`).
    pub fn highest_priority(&self) -> u64 {
        self.items.first().map_or(0, QueueItem::priority)
    }

    /// Every queued item, in heap-array order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// Removes canceled items (client-go `clean`).
    pub fn clean(&mut self) {
        let mut i = 0;
        while i < self.items.len() {
            if self.items[i].is_canceled() {
                self.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Removes and returns every item, in heap-array order.
    pub fn drain_all(&mut self) -> Vec<T> {
        std::mem::take(&mut self.items)
    }

    fn remove(&mut self, i: usize) -> Option<T> {
        let n = self.items.len().checked_sub(1)?;
        if n != i {
            self.items.swap(i, n);
            let item = self.items.pop();
            if !self.down(i) {
                self.up(i);
            }
            return item;
        }
        self.items.pop()
    }

    fn less(&self, i: usize, j: usize) -> bool {
        self.items[i].priority() > self.items[j].priority()
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if i == j || !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize) -> bool {
        let n = self.items.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && self.less(j2, j1) {
                j = j2;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
        i > i0
    }
}
