//! PostgreSQL's logical replication messages (the `pgoutput` plugin,
//! protocol version 1), as `pg_logical_slot_peek_binary_changes` returns
//! them: what the change source needs of them.

/// One message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A transaction begins; its commit time in microseconds since
    /// 2000-01-01 UTC.
    Begin {
        /// Commit time.
        commit_time: i64,
    },
    /// A transaction ends; `end_lsn` is where the next one starts.
    Commit {
        /// The LSN after the commit.
        end_lsn: u64,
    },
    /// A table's columns (sent before its first change, and again after
    /// its columns change).
    Relation(Relation),
    /// A row inserted.
    Insert {
        /// The table.
        relation: u32,
        /// The new row.
        new: Vec<Value>,
    },
    /// A row updated.
    Update {
        /// The table.
        relation: u32,
        /// The old row (its key, or all of it with `REPLICA IDENTITY
        /// FULL`), when the server sends it.
        old: Option<Vec<Value>>,
        /// The new row.
        new: Vec<Value>,
    },
    /// A row deleted.
    Delete {
        /// The table.
        relation: u32,
        /// The old row (its key, or all of it with `REPLICA IDENTITY
        /// FULL`).
        old: Vec<Value>,
    },
    /// Tables emptied.
    Truncate {
        /// Their ids.
        relations: Vec<u32>,
    },
    /// Anything else (types, origins, logical messages): not needed.
    Other,
}

/// A table's description.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// Its id.
    pub id: u32,
    /// `schema.name`.
    pub name: String,
    /// Its columns: name and type OID.
    pub columns: Vec<(String, u32)>,
}

/// A column's value in a change.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Null.
    Null,
    /// A TOASTed value the change does not repeat (unchanged).
    Unchanged,
    /// The value in PostgreSQL's text form.
    Text(String),
}

/// Reads one message; `None` if it is cut short or malformed.
pub fn parse(data: &[u8]) -> Option<Message> {
    let mut r = Reader { data, at: 1 };
    Some(match data.first()? {
        b'B' => {
            r.u64()?; // final LSN
            Message::Begin {
                commit_time: r.u64()? as i64,
            }
        }
        b'C' => {
            r.u8()?; // flags
            r.u64()?; // commit LSN
            Message::Commit { end_lsn: r.u64()? }
        }
        b'R' => {
            let id = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            r.u8()?; // replica identity
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                r.u8()?; // flags
                let column = r.string()?;
                let oid = r.u32()?;
                r.u32()?; // type modifier
                columns.push((column, oid));
            }
            Message::Relation(Relation {
                id,
                name: format!("{namespace}.{name}"),
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            (r.u8()? == b'N').then_some(())?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            (kind == b'N').then_some(())?;
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let kind = r.u8()?;
            (kind == b'K' || kind == b'O').then_some(())?;
            Message::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            r.u8()?; // options
            let mut relations = Vec::new();
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate { relations }
        }
        _ => Message::Other,
    })
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let bytes = self.data.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(bytes)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let rest = self.data.get(self.at..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Some(text)
    }
    fn tuple(&mut self) -> Option<Vec<Value>> {
        let n = self.u16()?;
        let mut values = Vec::with_capacity(n as usize);
        for _ in 0..n {
            values.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    Value::Text(String::from_utf8_lossy(self.take(len)?).into_owned())
                }
                _ => return None,
            });
        }
        Some(values)
    }
}

/// `X/Y`, PostgreSQL's way of writing an LSN.
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_and_a_cut_one_is_refused() {
        let mut insert = vec![b'I', 0, 0, 0x40, 0x46, b'N', 0, 3];
        insert.extend_from_slice(&[b't', 0, 0, 0, 1, b'1', b'n', b'u']);
        assert_eq!(
            parse(&insert),
            Some(Message::Insert {
                relation: 0x4046,
                new: vec![Value::Text("1".into()), Value::Null, Value::Unchanged],
            })
        );
        assert_eq!(parse(&insert[..insert.len() - 1]), None);
        let mut commit = vec![b'C', 0];
        commit.extend_from_slice(&7u64.to_be_bytes());
        commit.extend_from_slice(&0x1_0000_0010u64.to_be_bytes());
        commit.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(
            parse(&commit),
            Some(Message::Commit {
                end_lsn: 0x1_0000_0010
            })
        );
        assert_eq!(lsn_text(0x1_0000_0010), "1/10");
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(b"Yjunk"), Some(Message::Other));
    }
}
