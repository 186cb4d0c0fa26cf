"""A small read-only table view of a :class:`pandas.DataFrame` (measurements, tracks).

A ``QTableView`` on a model that reads the DataFrame lazily, so that tables
of thousands of rows show at once. magicgui has no widget for that, hence Qt.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import QLabel, QTableView, QVBoxLayout, QWidget

__all__ = ["DataFrameModel", "TableView", "format_cell"]


def format_cell(value: Any) -> str:
    """Text of one cell: floats with 4 significant digits, the rest as is."""
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value)


class DataFrameModel(QAbstractTableModel):
    """Qt model over a DataFrame (read-only)."""

    def __init__(self, df: pd.DataFrame | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        self._df = pd.DataFrame() if df is None else df

    @property
    def df(self) -> pd.DataFrame:
        """The table shown."""
        return self._df

    def set_df(self, df: pd.DataFrame) -> None:
        """Show another table."""
        self.beginResetModel()
        self._df = df
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Return the number of rows (Qt API)."""
        return 0 if parent.isValid() else len(self._df)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Return the number of columns (Qt API)."""
        return 0 if parent.isValid() else len(self._df.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Cell text (Qt API)."""
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        return format_cell(self._df.iat[index.row(), index.column()])

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        """Column names and row numbers (Qt API)."""
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return str(self._df.columns[section]) if section < len(self._df.columns) else None
        return str(section)


class TableView(QWidget):
    """A title line and a table; :meth:`set_table` shows a DataFrame."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("")
        self.model = DataFrameModel(parent=self)
        self.view = QTableView(self)
        self.view.setModel(self.model)
        self.view.setMinimumHeight(160)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.view)

    @property
    def table(self) -> pd.DataFrame:
        """The DataFrame shown."""
        return self.model.df

    def set_table(self, df: pd.DataFrame, title: str = "") -> None:
        """Show ``df`` under ``title`` (rows and columns are counted in the title)."""
        self.model.set_df(df)
        n, m = df.shape
        self.title.setText(f"{title} ({n} rows, {m} columns)" if title else f"{n} rows")
        self.view.resizeColumnsToContents()
