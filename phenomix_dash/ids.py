"""Component ids, kept in one place so layouts and callbacks cannot drift apart."""

URL = "url"
PROVENANCE = "provenance"
# Navbar screen switcher (several screens behind one server)
SCREEN_MENU = "screen-menu"
SCREEN_ITEM = "screen-item"  # pattern-matching type: {"type": SCREEN_ITEM, "name": screen}
NAV_LINK = "nav-link"  # pattern-matching type: {"type": NAV_LINK, "path": a page's path}

# Screen overview page
OV_URL = "overview-url"
OV_PLATE = "overview-plate"
OV_COLOR_BY = "overview-color-by"
OV_PLATE_FIG = "overview-plate-figure"
OV_SUMMARY = "overview-summary"
OV_WELL = "overview-well-store"
OV_SITE = "overview-site"
OV_WELL_INFO = "overview-well-info"
OV_IMAGES = "overview-images"

# Map page
MAP_URL = "map-url"
MAP_LEVEL = "map-level"
MAP_SPACE = "map-space"
MAP_COLOR = "map-color-by"
MAP_NOTE = "map-note"
MAP_RAW = "map-raw-figure"
MAP_ALIGNED = "map-aligned-figure"
MAP_RAW_BOX = "map-raw-box"
MAP_ALIGNED_BOX = "map-aligned-box"
MAP_DRAWN = "map-drawn"
MAP_POINT = "map-point"
MAP_SEL = "map-selection"
MAP_PANEL = "map-panel"
MAP_BENCH = "map-benchmarks"
MAP_SEL_SUMMARY = "map-selection-summary"
MAP_SEL_PLATE = "map-selection-plate"
MAP_SEL_PLATE_FIG = "map-selection-plate-figure"
MAP_SEL_TILES = "map-selection-tiles"
MAP_SEL_DOWNLOAD_BTN = "map-selection-download-button"
MAP_SEL_DOWNLOAD = "map-selection-download"

# Plates page
PL_URL = "plates-url"
PL_METRIC = "plates-metric"
PL_PLATE = "plates-plate"
PL_SPACE = "plates-space"
PL_HEATMAP = "plates-heatmap"
PL_PROFILES = "plates-profiles"
PL_POSITION = "plates-position-similarity"
PL_BATCH = "plates-batch-metrics"
PL_SIMILARITY = "plates-similarity"
PL_DRIFT = "plates-drift"
PL_OUTLIERS = "plates-outliers"

# Activity page
ACT_URL = "activity-url"
ACT_SPACE = "activity-space"
ACT_KIND = "activity-kind"
ACT_DIST = "activity-distances"
ACT_VOLCANO = "activity-volcano"
ACT_VOLCANO_INFO = "activity-volcano-info"
ACT_TYPES = "activity-types"
ACT_ACTIVE = "activity-active-only"
ACT_SEARCH = "activity-search"
ACT_COUNT = "activity-count"
ACT_GRID = "activity-grid"
ACT_EXPORT = "activity-export"
ACT_DOWNLOAD = "activity-download"

# Similarity page
SIM_URL = "similarity-url"
SIM_KIND = "similarity-kind"
SIM_MODE = "similarity-mode"
SIM_SEARCH = "similarity-search"
SIM_COMPLEX = "similarity-complex"
SIM_COMPOUND = "similarity-compound"
SIM_DOSE = "similarity-dose"
SIM_SIZE = "similarity-size"
SIM_RANGE = "similarity-range"
SIM_FIG = "similarity-heatmap"
SIM_BLOCK = "similarity-block"
SIM_PAIR = "similarity-pair"
SIM_PAIR_INFO = "similarity-pair-info"
SIM_NOTE = "similarity-note"
SIM_PAIR_GRID = "similarity-pair-grid"  # pattern-matching, index = pert_id
SIM_PAIR_EXPORT = "similarity-pair-export"
SIM_CONTROLS = {"search": "similarity-search-box", "complex": "similarity-complex-box", "targets": "similarity-compound-box"}

# Perturbation page
PERT_URL = "perturbation-url"
PERT_SEARCH = "perturbation-search"
PERT_K = "perturbation-k"
PERT_SUMMARY = "perturbation-summary"
PERT_NB_FIG = "perturbation-neighbour-figure"
PERT_NB_TABLES = "perturbation-neighbour-tables"
PERT_GRID = "perturbation-grid"  # pattern-matching: {"type": PERT_GRID, "index": list name}
PERT_EXPORT = "perturbation-export"  # pattern-matching CSV buttons
PERT_PLATE = "perturbation-plate"
PERT_PLATE_FIG = "perturbation-plate-figure"
PERT_TILES = "perturbation-tiles"
PERT_SET_BADGE = "perturbation-set-badge"  # "in set X" for the chosen gene set

# Perturbation page: characterise sections (perturbation_character.py)
PERT_SIG_ONLY = "perturbation-significant-only"
PERT_DRIVERS = "perturbation-drivers"
PERT_DRIVERS_FIG = "perturbation-drivers-figure"
PERT_DRIVERS_BTN = "perturbation-drivers-download-button"
PERT_DRIVERS_DL = "perturbation-drivers-download"
PERT_PAIR = "perturbation-pair"
PERT_PAIR_WITH = "perturbation-pair-with"
PERT_DOSE = "perturbation-dose"

# Images page
IMG_URL = "images-url"
IMG_WELL = "images-well"
IMG_SITE = "images-site"
IMG_INFO = "images-well-info"
IMG_VIEW = "images-view"
IMG_ON = "images-channel-on"  # pattern-matching, index = channel number
IMG_COLOUR = "images-channel-colour"
IMG_GAIN = "images-channel-gain"
IMG_TILE_FIG = "images-tile-figure"
IMG_CENTRE = "images-tile-centre"
IMG_RATIO = "images-mask-ratio"
IMG_RESEED = "images-new-mask"
IMG_SEED = "images-mask-seed"
IMG_RECON = "images-reconstruction"
IMG_SET_BADGE = "images-set-badge"  # whether the well's perturbation is in the chosen set

# Benchmarks page
BM_SPACE = "benchmarks-recall-space"
BM_RECALL = "benchmarks-recall"
BM_GRID = "benchmarks-grid"  # pattern-matching {"type": BM_GRID, "index": section}
BM_EXPORT = "benchmarks-export"

# Compare page (two maps side by side; phenomix_dash/pages/compare.py)
CMP_URL = "compare-url"
CMP_LEFT = "compare-left-space"
CMP_RIGHT = "compare-right-space"
CMP_K = "compare-k"
CMP_SEL = "compare-selection"  # store: {"on": space the region was drawn on, "sel": encoded region}
CMP_NOTE = "compare-note"
CMP_LEFT_MAP = "compare-left-map"
CMP_RIGHT_MAP = "compare-right-map"
CMP_SEL_TEXT = "compare-selection-text"
CMP_CLEAR = "compare-clear-selection"
CMP_JACCARD = "compare-jaccard-figure"
CMP_JACCARD_TEXT = "compare-jaccard-caption"
CMP_GRID = "compare-overlap-grid"
CMP_EXPORT = "compare-overlap-export"
CMP_DOWNLOAD = "compare-overlap-download"  # dcc.Download of the whole overlap table
CMP_BENCH = "compare-benchmarks"
CMP_DRAWN = "compare-drawn"  # stores {"type": CMP_DRAWN, "side": "left"/"right"}: the space each map has drawn

# Map page: selection tables, composition, AnnData download, A / B and their comparison (issue #16)
MAP_SEL_TABLES = "map-selection-tables-box"
MAP_SEL_PERT_GRID = "map-selection-perturbation-grid"
MAP_SEL_WELL_GRID = "map-selection-well-grid"
MAP_SEL_COMPOSITION = "map-selection-composition"
MAP_SEL_H5AD_BTN = "map-selection-h5ad-button"
MAP_SEL_H5AD_DOWNLOAD = "map-selection-h5ad-download"
MAP_SEL_PERTS_BTN = "map-selection-perturbations-button"
MAP_SEL_PERTS_DOWNLOAD = "map-selection-perturbations-download"  # one row per perturbation, as CSV
MAP_SEL_A = "map-selection-a"  # stores: the encoded region kept as A / B (selection.stored_selection)
MAP_SEL_B = "map-selection-b"
MAP_STORE_A_BTN = "map-store-a-button"
MAP_STORE_B_BTN = "map-store-b-button"
MAP_CLEAR_AB_BTN = "map-clear-ab-button"
MAP_AB_STATUS = "map-ab-status"
MAP_COMPARE = "map-compare"

# Gene sets (#16): the chooser under the navbar, on every page, and the Sets page
SET_STORE = "set-store"  # the chosen set's URL form (gene_sets.py), None: no set
SET_URL_SYNC = "set-url-sync"  # written by the clientside callback that puts the set in the URL
SET_LOCATIONS = "set-locations"  # the ids of every page's dcc.Location, for that callback
SET_PANEL = "set-panel"
SET_CHOICE = "set-choice"
SET_TEXT = "set-text"
SET_APPLY = "set-apply"
SET_UPLOAD = "set-upload"
SET_CLEAR = "set-clear"
SET_REPORT = "set-report"
SETS_SUMMARY = "sets-summary"
SETS_NULL = "sets-null"
SETS_TABLE = "sets-table"
