"""Component ids, kept in one place so layouts and callbacks cannot drift apart."""

URL = "url"
PROVENANCE = "provenance"

# Screen overview page
OV_PLATE = "overview-plate"
OV_COLOR_BY = "overview-color-by"
OV_PLATE_FIG = "overview-plate-figure"
OV_SUMMARY = "overview-summary"
OV_WELL = "overview-well-store"
OV_SITE = "overview-site"
OV_WELL_INFO = "overview-well-info"
OV_IMAGES = "overview-images"
