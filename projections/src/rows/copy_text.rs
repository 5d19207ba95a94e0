//! COPY text lines written straight from a row struct's `Serialize`: no `serde_json::Value` tree
//! per row, no JSON text built apart and copied again (a replay writes every activity-log
//! payload through here). The values must be exactly what the INSERT path
//! (`jsonb_populate_recordset` over the rows serialized to JSON) stores, see `Scalar`.

use serde::Serialize;
use serde::ser::{self, Impossible};
use tokio_postgres::Column;
use tokio_postgres::types::Type;

/// Why a row was not written.
#[derive(Debug, thiserror::Error)]
pub(super) enum CopyError {
    /// A value whose COPY text would differ from what the INSERT path stores; the caller falls
    /// back to INSERT for the whole batch.
    #[error("value without an exact COPY text form")]
    Unsupported,
    #[error("{0}")]
    Serialize(String),
}

impl ser::Error for CopyError {
    fn custom<T: std::fmt::Display>(message: T) -> CopyError {
        CopyError::Serialize(message.to_string())
    }
}

/// Writes rows as COPY text lines, one field per column of the table in its order. Reuses its
/// buffers from row to row.
pub(super) struct RowWriter<'c> {
    /// Each column's name and whether it is json or jsonb.
    columns: Vec<(&'c str, bool)>,
    /// The values of the row being written, in the struct's order.
    fields: Vec<u8>,
    /// Where each column's value lies in `fields` (`None`: SQL NULL).
    spans: Vec<Option<(usize, usize)>>,
    /// A json value's text before it is escaped into `fields` (escaped in one pass, not per
    /// fragment the JSON writer emits).
    json: Vec<u8>,
}

impl<'c> RowWriter<'c> {
    pub(super) fn new(columns: &'c [Column]) -> RowWriter<'c> {
        RowWriter::named(
            columns
                .iter()
                .map(|c| {
                    (
                        c.name(),
                        *c.type_() == Type::JSON || *c.type_() == Type::JSONB,
                    )
                })
                .collect(),
        )
    }

    fn named(columns: Vec<(&'c str, bool)>) -> RowWriter<'c> {
        let spans = vec![None; columns.len()];
        RowWriter {
            columns,
            fields: Vec::with_capacity(512),
            spans,
            json: Vec::with_capacity(512),
        }
    }

    /// Appends `row` to `text` as one line; on an error, nothing.
    pub(super) fn write<R: Serialize>(
        &mut self,
        text: &mut Vec<u8>,
        row: &R,
    ) -> Result<(), CopyError> {
        self.fields.clear();
        self.spans.iter_mut().for_each(|span| *span = None);
        row.serialize(&mut *self)?;
        for (index, span) in self.spans.iter().enumerate() {
            if index > 0 {
                text.push(b'\t');
            }
            match span {
                Some((start, end)) => text.extend_from_slice(&self.fields[*start..*end]),
                None => text.extend_from_slice(b"\\N"),
            }
        }
        text.push(b'\n');
        Ok(())
    }
}

/// The serializer methods for what no column takes from a row struct here (sequences, maps,
/// tuples, variants carrying data): each is `Unsupported`, and the caller falls back to INSERT.
macro_rules! refused_compounds {
    ($ok:ty) => {
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<$ok, CopyError> {
            Err(CopyError::Unsupported)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, CopyError> {
            Err(CopyError::Unsupported)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, CopyError> {
            Err(CopyError::Unsupported)
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, CopyError> {
            Err(CopyError::Unsupported)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, CopyError> {
            Err(CopyError::Unsupported)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, CopyError> {
            Err(CopyError::Unsupported)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, CopyError> {
            Err(CopyError::Unsupported)
        }
    };
}

impl ser::Serializer for &mut RowWriter<'_> {
    type Ok = ();
    type Error = CopyError;
    type SerializeSeq = Impossible<(), CopyError>;
    type SerializeTuple = Impossible<(), CopyError>;
    type SerializeTupleStruct = Impossible<(), CopyError>;
    type SerializeTupleVariant = Impossible<(), CopyError>;
    type SerializeMap = Impossible<(), CopyError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), CopyError>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, CopyError> {
        Ok(self)
    }

    // A row is a struct; anything else goes through INSERT.
    fn serialize_bool(self, _: bool) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_i8(self, _: i8) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_i16(self, _: i16) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_i32(self, _: i32) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_i64(self, _: i64) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_u8(self, _: u8) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_u16(self, _: u16) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_u32(self, _: u32) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_u64(self, _: u64) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_f32(self, _: f32) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_f64(self, _: f64) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_char(self, _: char) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_str(self, _: &str) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_none(self) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_unit(self) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), CopyError> {
        Err(CopyError::Unsupported)
    }

    refused_compounds!(());
}

impl ser::SerializeStruct for &mut RowWriter<'_> {
    type Ok = ();
    type Error = CopyError;

    /// A field named like no column is left out, as the INSERT path leaves it out.
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), CopyError> {
        let Some(index) = self.columns.iter().position(|(column, _)| *column == name) else {
            return Ok(());
        };
        let start = self.fields.len();
        let null = if self.columns[index].1 {
            self.json.clear();
            serde_json::to_writer(&mut self.json, value)
                .map_err(|error| CopyError::Serialize(error.to_string()))?;
            escape_into(&mut self.fields, &self.json);
            self.json == b"null"
        } else {
            value.serialize(Scalar(&mut self.fields))?
        };
        if null {
            self.fields.truncate(start);
        } else {
            self.spans[index] = Some((start, self.fields.len()));
        }
        Ok(())
    }

    fn end(self) -> Result<(), CopyError> {
        Ok(())
    }
}

/// A value for a column that is not json: the text PostgreSQL derives from the JSON scalar the
/// INSERT path would hand it (a string's content, `true`/`false`, an integer's digits); `true`
/// for JSON null (SQL NULL for every column type). Fractional numbers keep their JSON spelling
/// there and arrays and objects become PostgreSQL arrays or composites: unsupported.
struct Scalar<'b>(&'b mut Vec<u8>);

impl Scalar<'_> {
    fn digits(self, value: impl std::fmt::Display) -> Result<bool, CopyError> {
        use std::io::Write;
        write!(self.0, "{value}").map_err(|error| CopyError::Serialize(error.to_string()))?;
        Ok(false)
    }
}

impl ser::Serializer for Scalar<'_> {
    type Ok = bool;
    type Error = CopyError;
    type SerializeSeq = Impossible<bool, CopyError>;
    type SerializeTuple = Impossible<bool, CopyError>;
    type SerializeTupleStruct = Impossible<bool, CopyError>;
    type SerializeTupleVariant = Impossible<bool, CopyError>;
    type SerializeMap = Impossible<bool, CopyError>;
    type SerializeStruct = Impossible<bool, CopyError>;
    type SerializeStructVariant = Impossible<bool, CopyError>;

    fn serialize_bool(self, value: bool) -> Result<bool, CopyError> {
        self.0
            .extend_from_slice(if value { b"true" } else { b"false" });
        Ok(false)
    }
    fn serialize_i8(self, value: i8) -> Result<bool, CopyError> {
        self.digits(value)
    }
    fn serialize_i16(self, value: i16) -> Result<bool, CopyError> {
        self.digits(value)
    }
    fn serialize_i32(self, value: i32) -> Result<bool, CopyError> {
        self.digits(value)
    }
    fn serialize_i64(self, value: i64) -> Result<bool, CopyError> {
        self.digits(value)
    }
    fn serialize_u8(self, value: u8) -> Result<bool, CopyError> {
        self.digits(value)
    }
    fn serialize_u16(self, value: u16) -> Result<bool, CopyError> {
        self.digits(value)
    }
    fn serialize_u32(self, value: u32) -> Result<bool, CopyError> {
        self.digits(value)
    }
    fn serialize_u64(self, value: u64) -> Result<bool, CopyError> {
        self.digits(value)
    }
    fn serialize_f32(self, _: f32) -> Result<bool, CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_f64(self, _: f64) -> Result<bool, CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_char(self, value: char) -> Result<bool, CopyError> {
        self.serialize_str(value.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, value: &str) -> Result<bool, CopyError> {
        escape_into(self.0, value.as_bytes());
        Ok(false)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<bool, CopyError> {
        Err(CopyError::Unsupported)
    }
    fn serialize_none(self) -> Result<bool, CopyError> {
        Ok(true)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<bool, CopyError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<bool, CopyError> {
        Ok(true)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<bool, CopyError> {
        Ok(true)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<bool, CopyError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<bool, CopyError> {
        value.serialize(self)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, CopyError> {
        Err(CopyError::Unsupported)
    }

    refused_compounds!(bool);
}

/// COPY text format: backslash, tab, newline and carriage return are escaped; nothing else is.
/// The runs between them are copied whole (they are ASCII, so no UTF-8 sequence holds one of
/// their bytes), found with vectorised searches: every JSON payload of a replay passes here.
pub(super) fn escape_into(text: &mut Vec<u8>, value: &[u8]) {
    let mut rest = value;
    // Carriage returns are rare: where the next one is, searched for again only once passed.
    let mut carriage_return = memchr::memchr(b'\r', rest);
    loop {
        let before = &rest[..carriage_return.unwrap_or(rest.len())];
        let Some(at) = memchr::memchr3(b'\\', b'\t', b'\n', before).or(carriage_return) else {
            break;
        };
        text.extend_from_slice(&rest[..at]);
        text.extend_from_slice(match rest[at] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => b"\\r",
        });
        rest = &rest[at + 1..];
        carriage_return = match carriage_return {
            Some(next) if next > at => Some(next - at - 1),
            _ => memchr::memchr(b'\r', rest),
        };
    }
    text.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::json;

    use super::{CopyError, RowWriter, escape_into};

    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Plain,
    }

    #[derive(Serialize)]
    struct Row {
        payload: serde_json::Value,
        id: String,
        missing: Option<String>,
        count: i64,
        flag: bool,
        kind: Kind,
        not_a_column: String,
        empty: serde_json::Value,
    }

    fn row() -> Row {
        Row {
            payload: json!({"b": "tab\there", "a": [1, null], "path": "C:\\x"}),
            id: "id\nwith\\escapes é".to_owned(),
            missing: None,
            count: -42,
            flag: true,
            kind: Kind::Plain,
            not_a_column: "ignored".to_owned(),
            empty: serde_json::Value::Null,
        }
    }

    #[test]
    fn rows_are_written_in_column_order_with_nulls_and_escapes() {
        let mut writer = RowWriter::named(vec![
            ("id", false),
            ("count", false),
            ("payload", true),
            ("missing", false),
            ("flag", false),
            ("kind", false),
            ("empty", true),
            ("absent", false),
        ]);
        let mut text = b"earlier\n".to_vec();
        writer.write(&mut text, &row()).unwrap();
        writer.write(&mut text, &row()).unwrap();
        let line = "id\\nwith\\\\escapes é\t-42\t\
                    {\"a\":[1,null],\"b\":\"tab\\\\there\",\"path\":\"C:\\\\\\\\x\"}\t\
                    \\N\ttrue\tplain\t\\N\t\\N\n";
        assert_eq!(
            String::from_utf8(text).unwrap(),
            format!("earlier\n{line}{line}")
        );
    }

    #[test]
    fn values_without_an_exact_text_form_are_refused() {
        #[derive(Serialize)]
        struct Fractional {
            amount: f64,
        }
        #[derive(Serialize)]
        struct List {
            items: Vec<String>,
        }
        let mut text = Vec::new();
        let amount =
            RowWriter::named(vec![("amount", false)]).write(&mut text, &Fractional { amount: 1.5 });
        assert!(matches!(amount, Err(CopyError::Unsupported)));
        let list = List {
            items: vec!["a".to_owned()],
        };
        let items = RowWriter::named(vec![("items", false)]).write(&mut text, &list);
        assert!(matches!(items, Err(CopyError::Unsupported)));
        let mut json = Vec::new();
        RowWriter::named(vec![("items", true)])
            .write(&mut json, &list)
            .unwrap();
        assert_eq!(json, b"[\"a\"]\n");
    }

    #[test]
    fn copy_text_escapes_only_backslash_tab_newline_and_return() {
        let mut text = b"kept\t".to_vec();
        escape_into(&mut text, "a\\b\tc\nd\re \"é\" ✓\r\r\\".as_bytes());
        assert_eq!(
            text,
            "kept\ta\\\\b\\tc\\nd\\re \"é\" ✓\\r\\r\\\\".as_bytes()
        );
        let mut plain = Vec::new();
        escape_into(&mut plain, b"no escapes");
        assert_eq!(plain, b"no escapes");
    }
}
