# Test instrument (tests/test_psoc6_mtb_make.py), not ModusToolbox: a minimal stand-in for the proprietary
# ModusToolbox tools package's make layer (tools_3.x/make/start.mk and its core_version3/*.mk), written for fwtool's
# test from what Infineon's public core-make and recipe-make-cat1a read. It sets the MTB_TOOLS__* paths and MTB__*
# helpers they use, loads libs/mtb.mk (the test writes it, standing in for 'make getlibs') and the BSP's bsp.mk,
# points CY_TOOL_mtbsearch_EXE_ABS at this folder's Python stand-in for mtbsearch (auto-discovery, no configurator
# code generation), and includes core-make's main.mk. There is no mtbquery (CY_TOOL_* are set here for the one tool
# used), no mtbninja (core-make falls back to its make build), no getlibs, program or IDE export.
MTB__SPACE:=$(subst ,, )
MTB__COMMA:=,
MTB__OPEN_PAREN:=(
MTB__CLOSE_PAREN:=)
MTB__INDENT:=$(MTB__SPACE)$(MTB__SPACE)
define MTB__NEWLINE


endef
MTB__NOISE?=@
MTB__SILENT_OUTPUT?=> /dev/null 2>&1
MTB__JOB_BACKGROUND?=
MTB__MAKE_MAJOR_VER:=$(word 1,$(subst ., ,$(MAKE_VERSION)))
MTB__FIND:=find

mtb__path_normalize=$(abspath $(1))
mtb__get_dir=$(patsubst %/,%,$(dir $(1)))
mtb__equals=$(and $(findstring x$(1),x$(2)),$(findstring x$(2),x$(1)))
mtb__error=$(error $(1))
MTB_FILE_TYPE:=file# GNU make 4: core-make's bwc.mk then writes files with $(file), not 'echo -e' (dash prints the -e)
mtb__file_write=$(file >$(1),$(2))
mtb__file_append=$(file >>$(1),$(2))

MTB_TOOLS__INTERFACE_VERSION:=3
MTB_TOOLS__TOOLS_DIR:=$(patsubst %/make/,%,$(dir $(lastword $(MAKEFILE_LIST))))
MTB_TOOLS__PRJ_DIR:=$(abspath $(CURDIR))
MTB_TOOLS__REL_PRJ_PATH:=.
MTB_TOOLS__CACHE_DIR:=$(MTB_TOOLS__PRJ_DIR)/build/.mtb-cache
MTB_TOOLS__OFFLINE_DIR:=$(MTB_TOOLS__PRJ_DIR)/build/.mtb-offline
MTB_TOOLS__GLOBAL_DIR:=$(MTB_TOOLS__PRJ_DIR)/build/.mtb-global
MTB_TOOLS__OUTPUT_BASE_DIR:=$(MTB_TOOLS__PRJ_DIR)/build
MTB_TOOLS__OUTPUT_TARGET_DIR:=$(MTB_TOOLS__OUTPUT_BASE_DIR)/$(TARGET)
MTB_TOOLS__OUTPUT_CONFIG_DIR:=$(MTB_TOOLS__OUTPUT_TARGET_DIR)/$(CONFIG)
CY_GETLIBS_PATH?=$(MTB_TOOLS__PRJ_DIR)/libs
CY_GETLIBS_DEPS_PATH?=$(MTB_TOOLS__PRJ_DIR)/deps

include $(CY_GETLIBS_PATH)/mtb.mk
include $(SEARCH_TARGET_$(TARGET))/bsp.mk

MTB_TOOLS__CORE_DIR:=$(SEARCH_core-make)
MTB_TOOLS__RECIPE_DIR:=$(RECIPE_DIR)
MTB_TOOLS__TARGET_DIR:=$(SEARCH_TARGET_$(TARGET))
MTB_TOOLS__SEARCH:=$(MTB_TOOLS__PRJ_DIR) $(SEARCH_MTB_MK) $(SEARCH)
CY_TOOL_mtbsearch_EXE_ABS:=$(MTB_TOOLS__TOOLS_DIR)/mtbsearch/mtbsearch

include $(MTB_TOOLS__CORE_DIR)/make/core/main.mk
