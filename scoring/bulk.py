"""Bulk reads and writes of result tables: PostgreSQL COPY, or plain executemany elsewhere.

Reads travel as CSV text: PostgreSQL prints the shortest representation that reads back to the
same double and pandas parses it correctly rounded, so the bits survive the trip.
"""

import io

import pandas as pd
from django.db import connection


def _quoted(names: list[str]) -> str:
    return ", ".join(connection.ops.quote_name(name) for name in names)


def _pg_type(dtype) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        # Binary COPY wants the column's own width: int16 frames fill smallint columns.
        return "int2" if pd.api.types.pandas_dtype(dtype).itemsize == 2 else "int8"
    if pd.api.types.is_float_dtype(dtype):
        return "float8"
    return "text"


def frame_insert(*, table: str, frame: pd.DataFrame) -> None:
    """Insert every row of `frame` (columns named as in `table`); NaN and None become NULL."""
    if frame.empty:
        return
    columns = list(frame.columns)
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    if connection.vendor == "postgresql":
        # Binary COPY: doubles go over as their eight bytes, and psycopg packs rows in C.
        types = [_pg_type(frame[column].dtype) for column in columns]
        with connection.cursor() as cursor:
            with cursor.cursor.copy(
                f"COPY {connection.ops.quote_name(table)} ({_quoted(columns)}) "
                f"FROM STDIN WITH (FORMAT binary)"
            ) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        return
    placeholders = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {connection.ops.quote_name(table)} ({_quoted(columns)}) "
            f"VALUES ({placeholders})",
            list(rows),
        )


def frame_update(*, table: str, frame: pd.DataFrame, keys: list[str], scope: dict) -> None:
    """Set the non-key columns of `frame` on the rows of `table` matching `keys` and `scope`."""
    if frame.empty:
        return
    staging = "bulk_update_staging"
    values = [column for column in frame.columns if column not in keys]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {staging}")
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} AS SELECT {_quoted(list(frame.columns))} "
                       f"FROM {quote(table)} WHERE 1 = 0")
    frame_insert(table=staging, frame=frame)
    assignments = ", ".join(f"{quote(column)} = {staging}.{quote(column)}" for column in values)
    matches = " AND ".join(f"{quote(table)}.{quote(key)} = {staging}.{quote(key)}" for key in keys)
    scope_sql = " AND ".join(f"{quote(table)}.{quote(name)} = %s" for name in scope)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(table)} SET {assignments} FROM {staging} WHERE {matches} "
            f"AND {scope_sql}",
            list(scope.values()),
        )
        cursor.execute(f"DROP TABLE {staging}")


def query_frame(*, sql: str, params: list, columns: list[str], dtypes: dict) -> pd.DataFrame:
    """Run a SELECT and return its rows as a DataFrame with the given dtypes."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Interpolate on the client: COPY takes no bind parameters.
            statement = cursor.cursor.mogrify(sql, params)
            buffer = io.BytesIO()
            with cursor.cursor.copy(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv)") as copy:
                for block in copy:
                    buffer.write(block)
        buffer.seek(0)
        if not buffer.getbuffer().nbytes:
            return pd.DataFrame({name: pd.Series(dtype=dtypes.get(name, object))
                                 for name in columns})
        text_columns = {name: str for name, dtype in dtypes.items() if dtype is object}
        # PostgreSQL writes booleans as t / f.
        frame = pd.read_csv(buffer, header=None, names=columns, dtype=text_columns,
                            keep_default_na=False, na_values=[""], true_values=["t"],
                            false_values=["f"])
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            frame = pd.DataFrame.from_records(cursor.fetchall(), columns=columns)
    return frame.astype(dtypes)
