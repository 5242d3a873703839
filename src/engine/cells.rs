//! The request's values, one cell per slot, their text kept in one buffer.
//!
//! A request reads a dozen values or so (headers, the source address, …) and the engine writes some of them;
//! a `String` for each would be an allocation per value read and per value written, on every request, rules
//! matching or not. One buffer per exchange holds them all instead, made with the exchange's state: a value
//! read is appended to it by the host ([`super::Host::header_into`]), a value written appended after, and a
//! cell says where its text is. Text a write replaced stays in the buffer, which lives one exchange.

use std::ops::Range;

/// Room for a value, when the buffer is first sized for a document's slots.
const VALUE_ESTIMATE: usize = 32;

/// What is known of one slot's value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    NotFetched,
    Absent,
    /// Its text, in [`Cells::text`].
    Present(Range<usize>),
}

/// The values of one exchange's slots.
#[derive(Debug)]
pub(super) struct Cells {
    cells: Vec<Cell>,
    text: String,
}

impl Cells {
    /// `slots` cells, none fetched, and a buffer with room for a short value in each (none without slots).
    /// Sized once when the exchange starts, rather than grown a few bytes at a time by its values.
    pub(super) fn new(slots: usize) -> Self {
        Cells {
            // Not `vec![…; n]`, which clones a cell for every slot.
            cells: std::iter::repeat_with(|| Cell::NotFetched).take(slots).collect(),
            text: String::with_capacity(slots * VALUE_ESTIMATE),
        }
    }

    pub(super) fn fetched(&self, slot: usize) -> bool {
        self.cells.get(slot).is_some_and(|cell| *cell != Cell::NotFetched)
    }

    pub(super) fn get(&self, slot: usize) -> Option<&str> {
        match self.cells.get(slot)? {
            Cell::Present(range) => self.text.get(range.clone()),
            Cell::Absent | Cell::NotFetched => None,
        }
    }

    /// Fills `slot` with what `read` appends to the buffer, or absent when it returns `false`.
    pub(super) fn fill(&mut self, slot: usize, read: impl FnOnce(&mut String) -> bool) {
        let start = self.text.len();
        let cell = if read(&mut self.text) {
            Cell::Present(start..self.text.len())
        } else {
            self.text.truncate(start);
            Cell::Absent
        };
        if let Some(slot) = self.cells.get_mut(slot) {
            *slot = cell;
        }
    }

    /// The engine set the value: `value` from now on.
    pub(super) fn set(&mut self, slot: usize, value: &str) {
        if slot >= self.cells.len() {
            return;
        }
        let start = self.text.len();
        self.text.push_str(value);
        let end = self.text.len();
        if let Some(cell) = self.cells.get_mut(slot) {
            *cell = Cell::Present(start..end);
        }
    }

    /// The engine added a value: a repeated header reads as its values joined with `,`. A slot not read yet
    /// stays so: the proxy will say, values it had included.
    pub(super) fn add(&mut self, slot: usize, value: &str) {
        match self.cells.get(slot) {
            Some(Cell::Present(range)) if range.end == self.text.len() => {
                // The value is the buffer's last: it grows in place.
                let start = range.start;
                self.text.push(',');
                self.text.push_str(value);
                let end = self.text.len();
                if let Some(cell) = self.cells.get_mut(slot) {
                    *cell = Cell::Present(start..end);
                }
            }
            Some(Cell::Present(range)) => {
                // Rare (a value read, then others, then added to): copied out, as `String` cannot extend from
                // itself.
                let joined = format!("{},{value}", self.text.get(range.clone()).unwrap_or_default());
                self.set(slot, &joined);
            }
            Some(Cell::Absent) => self.set(slot, value),
            Some(Cell::NotFetched) | None => {}
        }
    }

    /// The engine removed the value.
    pub(super) fn remove(&mut self, slot: usize) {
        if let Some(cell) = self.cells.get_mut(slot) {
            *cell = Cell::Absent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_and_written_share_one_buffer() {
        let mut cells = Cells::new(3);
        assert!(!cells.fetched(0));
        cells.fill(0, |out| {
            out.push('a');
            true
        });
        cells.fill(1, |_| false);
        assert_eq!((cells.get(0), cells.get(1), cells.fetched(1)), (Some("a"), None, true));
        // Added to the buffer's last value: grows in place.
        cells.add(0, "b");
        assert_eq!(cells.get(0), Some("a,b"));
        // Added to an earlier value: joined anew, the others untouched.
        cells.set(1, "x");
        cells.add(0, "c");
        assert_eq!((cells.get(0), cells.get(1)), (Some("a,b,c"), Some("x")));
        // Added to an absent value: the value; to one not fetched: left for the proxy to say.
        cells.remove(1);
        cells.add(1, "y");
        cells.add(2, "z");
        assert_eq!((cells.get(1), cells.get(2), cells.fetched(2)), (Some("y"), None, false));
        // Slots past the end are ignored.
        cells.set(9, "n");
        cells.add(9, "n");
        cells.fill(9, |_| true);
        assert_eq!(cells.get(9), None);
    }
}
