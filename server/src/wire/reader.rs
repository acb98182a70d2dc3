//! A bounds-checked reader of Kafka's encodings, for the requests this crate decodes itself
//! (`legacy`: classic layouts below the codec crate's floor; `topic_ids`: flexible v10
//! requests above its decoders). Every length is checked against the bytes left before
//! anything is read or allocated; a short or malformed body is an error, never a panic.

use bytes::{Buf, Bytes};
use kafka_protocol::protocol::StrBytes;

/// Reads from the front of a request body.
pub(crate) struct Reader<'a>(pub(crate) &'a mut Bytes);

/// Classic (non-flexible) encoding: i16-length strings, i32-length arrays.
impl Reader<'_> {
    pub(crate) fn need(&self, n: usize) -> Result<(), String> {
        if self.0.remaining() < n {
            return Err(format!(
                "body ends early: need {n} bytes, have {}",
                self.0.remaining()
            ));
        }
        Ok(())
    }

    pub(crate) fn i8(&mut self) -> Result<i8, String> {
        self.need(1)?;
        Ok(self.0.get_i8())
    }

    pub(crate) fn i16(&mut self) -> Result<i16, String> {
        self.need(2)?;
        Ok(self.0.get_i16())
    }

    pub(crate) fn i32(&mut self) -> Result<i32, String> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }

    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        self.need(8)?;
        Ok(self.0.get_i64())
    }

    pub(crate) fn nullable_str(&mut self) -> Result<Option<StrBytes>, String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let len = len as usize;
        self.need(len)?;
        let bytes = self.0.split_to(len);
        StrBytes::from_utf8(bytes)
            .map(Some)
            .map_err(|e| format!("string is not UTF-8: {e}"))
    }

    pub(crate) fn str(&mut self) -> Result<StrBytes, String> {
        self.nullable_str()?
            .ok_or_else(|| "null where a string is required".to_string())
    }

    /// An array whose elements take at least `min_element_bytes` each (checked against the
    /// bytes left before allocating).
    pub(crate) fn nullable_array<T>(
        &mut self,
        min_element_bytes: usize,
        mut element: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, String> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        let len = len as usize;
        self.need(len.saturating_mul(min_element_bytes))?;
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            out.push(element(self)?);
        }
        Ok(Some(out))
    }

    pub(crate) fn array<T>(
        &mut self,
        min_element_bytes: usize,
        element: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.nullable_array(min_element_bytes, element)?
            .ok_or_else(|| "null where an array is required".to_string())
    }
}

/// Flexible encoding: unsigned-varint lengths plus one, tagged fields.
impl Reader<'_> {
    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        self.need(1)?;
        Ok(self.0.get_u8())
    }

    pub(crate) fn uuid(&mut self) -> Result<uuid::Uuid, String> {
        self.need(16)?;
        Ok(uuid::Uuid::from_u128(self.0.get_u128()))
    }

    pub(crate) fn varint(&mut self) -> Result<u32, String> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.u8()?;
            value |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("unsigned varint longer than 5 bytes".into())
    }

    /// A compact length: `None` for null (0), else the length.
    pub(crate) fn compact_len(&mut self) -> Result<Option<usize>, String> {
        Ok(match self.varint()? {
            0 => None,
            n => Some((n - 1) as usize),
        })
    }

    pub(crate) fn compact_nullable_str(&mut self) -> Result<Option<StrBytes>, String> {
        let Some(len) = self.compact_len()? else {
            return Ok(None);
        };
        self.need(len)?;
        StrBytes::from_utf8(self.0.split_to(len))
            .map(Some)
            .map_err(|e| format!("string is not UTF-8: {e}"))
    }

    pub(crate) fn compact_str(&mut self) -> Result<StrBytes, String> {
        self.compact_nullable_str()?
            .ok_or_else(|| "null where a string is required".to_string())
    }

    /// A compact array whose elements take at least `min_element_bytes` each (checked against
    /// the bytes left before allocating).
    pub(crate) fn compact_nullable_array<T>(
        &mut self,
        min_element_bytes: usize,
        mut element: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, String> {
        let Some(len) = self.compact_len()? else {
            return Ok(None);
        };
        self.need(len.saturating_mul(min_element_bytes))?;
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            out.push(element(self)?);
        }
        Ok(Some(out))
    }

    pub(crate) fn compact_array<T>(
        &mut self,
        min_element_bytes: usize,
        element: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.compact_nullable_array(min_element_bytes, element)?
            .ok_or_else(|| "null where an array is required".to_string())
    }

    /// Skips a tagged-fields section (none of these structs has tagged fields of its own).
    pub(crate) fn tagged_fields(&mut self) -> Result<(), String> {
        let n = self.varint()?;
        for _ in 0..n {
            let _tag = self.varint()?;
            let size = self.varint()? as usize;
            self.need(size)?;
            self.0.advance(size);
        }
        Ok(())
    }
}
