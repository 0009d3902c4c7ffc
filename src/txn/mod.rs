//! Transactions: the write buffer, local latches and (later) the 2PC committer.
