"""Read-only queries behind the pages, by subject: what was run (`runs`), calendar months
(`months`), the portfolio table and its figures (`portfolio`), one agreement's dashboard
(`agreement`), and the value objects of the table's rows (`rows`). Import from the module."""
