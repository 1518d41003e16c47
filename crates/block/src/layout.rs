//! Checks the byte layout a Parquet footer declares before any reader trusts it. The footer is
//! data like any other: a flipped byte can make a column chunk start at a negative offset or run
//! past the end of the file, or a page start before its chunk. The parquet crate asserts on some
//! of these (`ColumnChunkMetaData::byte_range`) and does unchecked arithmetic on others, so a
//! damaged footer would panic the query task instead of quarantining the block. Every block is
//! checked once, when it is opened; afterwards readers may use the declared ranges as they are.

use std::ops::Range;

use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};

use crate::BlockError;

/// Every column chunk, and every page the offset index lists, lies inside the file, pages
/// inside their chunk; the pages' first rows count up from 0 within the row group.
pub(crate) fn check(metadata: &ParquetMetaData, file_size: u64) -> Result<(), BlockError> {
    for (row_group, group) in metadata.row_groups().iter().enumerate() {
        let pages = metadata.page_index_for_row_group(row_group);
        let rows = u64::try_from(group.num_rows()).map_err(|_| {
            BlockError::Corrupt(format!(
                "parquet footer: row group {row_group}: negative row count {}",
                group.num_rows()
            ))
        })?;
        for (leaf, column) in group.columns().iter().enumerate() {
            let corrupt = |why: String| {
                BlockError::Corrupt(format!(
                    "parquet footer: row group {row_group}, column {leaf}: {why}"
                ))
            };
            let chunk = chunk_range(column, file_size).map_err(corrupt)?;
            let first_rows = pages
                .page_locations(leaf)
                .into_iter()
                .flatten()
                .map(|page| page.first_row_index);
            page_rows_in_order(first_rows, rows).map_err(corrupt)?;
            for page in pages.page_locations(leaf).into_iter().flatten() {
                let start = u64::try_from(page.offset).ok();
                let end = start.zip(u64::try_from(page.compressed_page_size).ok());
                match end.and_then(|(start, size)| start.checked_add(size)) {
                    Some(end) if page.offset as u64 >= chunk.start && end <= chunk.end => {}
                    _ => {
                        return Err(corrupt(format!(
                            "page at {} ({} bytes) outside its chunk {chunk:?}",
                            page.offset, page.compressed_page_size
                        )))
                    }
                }
            }
        }
    }
    Ok(())
}

/// Parquet's row selection turns consecutive pages' first rows into row ranges by subtraction
/// (fuzz finding 9: a damaged offset index made it overflow), so they must start at 0, never go
/// down and stay within the row group.
fn page_rows_in_order(first_rows: impl Iterator<Item = i64>, rows: u64) -> Result<(), String> {
    let mut previous: Option<u64> = None;
    for first_row in first_rows {
        let in_order = u64::try_from(first_row)
            .ok()
            .filter(|row| *row <= rows && previous.map_or(*row == 0, |previous| previous <= *row));
        match in_order {
            Some(row) => previous = Some(row),
            None => {
                return Err(format!(
                    "page first row {first_row} out of order (previous {previous:?}, {rows} rows)"
                ))
            }
        }
    }
    Ok(())
}

/// The bytes of one column chunk (dictionary page, then data pages), checked against the file.
pub(crate) fn chunk_range(
    column: &ColumnChunkMetaData,
    file_size: u64,
) -> Result<Range<u64>, String> {
    let data = u64::try_from(column.data_page_offset())
        .map_err(|_| format!("negative data page offset {}", column.data_page_offset()))?;
    let start = match column.dictionary_page_offset() {
        None => data,
        Some(dictionary) => u64::try_from(dictionary)
            .ok()
            .filter(|dictionary| *dictionary <= data)
            .ok_or_else(|| format!("dictionary page offset {dictionary} not before {data}"))?,
    };
    let length = u64::try_from(column.compressed_size())
        .map_err(|_| format!("negative chunk size {}", column.compressed_size()))?;
    let end = start
        .checked_add(length)
        .filter(|end| *end <= file_size && data < *end)
        .ok_or_else(|| {
            format!("chunk at {start} ({length} bytes) outside the file of {file_size} bytes")
        })?;
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::basic::Type as PhysicalType;
    use parquet::schema::types::{SchemaDescriptor, Type};

    use super::*;

    fn column(dictionary: Option<i64>, data: i64, size: i64) -> ColumnChunkMetaData {
        let leaf = Type::primitive_type_builder("x", PhysicalType::INT64)
            .build()
            .expect("leaf");
        let root = Type::group_type_builder("schema")
            .with_fields(vec![Arc::new(leaf)])
            .build()
            .expect("root");
        let descriptor = SchemaDescriptor::new(Arc::new(root));
        ColumnChunkMetaData::builder(descriptor.column(0))
            .set_dictionary_page_offset(dictionary)
            .set_data_page_offset(data)
            .set_total_compressed_size(size)
            .build()
            .expect("column chunk")
    }

    #[test]
    fn a_chunk_inside_the_file_is_its_range() {
        assert_eq!(chunk_range(&column(None, 4, 10), 100), Ok(4..14));
        assert_eq!(chunk_range(&column(Some(4), 8, 10), 100), Ok(4..14));
        assert_eq!(chunk_range(&column(None, 4, 96), 100), Ok(4..100));
    }

    #[test]
    fn page_first_rows_must_count_up_within_the_row_group() {
        assert_eq!(page_rows_in_order([0, 3, 7].into_iter(), 10), Ok(()));
        assert_eq!(page_rows_in_order([0, 10].into_iter(), 10), Ok(()));
        assert_eq!(page_rows_in_order(std::iter::empty(), 0), Ok(()));
        for pages in [
            vec![1, 3],
            vec![0, 5, 4],
            vec![0, 11],
            vec![-1],
            vec![0, i64::MIN],
        ] {
            let result = page_rows_in_order(pages.iter().copied(), 10);
            assert!(result.is_err(), "{pages:?}: {result:?}");
        }
    }

    #[test]
    fn damaged_chunk_offsets_are_errors_not_panics() {
        // Fuzz finding 5: a negative offset made parquet's `byte_range` assert.
        for (dictionary, data, size) in [
            (None, -1, 10),
            (Some(-4), 8, 10),
            (None, 4, -1),
            (Some(9), 8, 10),
            (None, 4, 97),
            (None, i64::MAX, i64::MAX),
            (Some(4), 14, 10),
        ] {
            let result = chunk_range(&column(dictionary, data, size), 100);
            assert!(result.is_err(), "{dictionary:?} {data} {size}: {result:?}");
        }
    }
}
