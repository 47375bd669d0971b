"""Program management in the browser: partners, agreements, KPIs, objectives, reviews."""
