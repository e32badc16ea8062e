# Workaround for the ROS 2 wheels from PyPI, passed only by tools/build_msgs.sh as
# -DCMAKE_PROJECT_INCLUDE=...; colcon/apt builds never load it.
#
# Every share/<pkg>/cmake/export_<pkg>__rosidl_generator_pyExport.cmake of those wheels lists the
# wheel builder's /opt/python/cp3xx-cp3xx/include/... in INTERFACE_INCLUDE_DIRECTORIES, and CMake
# refuses imported targets with non-existent include paths at generate time. The right Python and
# NumPy include paths come from find_package(Python3 ... NumPy), so the stale ones are dropped at
# the end of configure (cmake_language(DEFER) runs after all find_package calls). A no-op when no
# imported target has such a path.
cmake_minimum_required(VERSION 3.21)  # DEFER (3.19) + the IMPORTED_TARGETS property (3.21)

if(NOT COMMAND s2m_drop_wheel_builder_includes)
  function(s2m_drop_wheel_builder_includes)
    get_directory_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
    set(_fixed "")
    foreach(_target IN LISTS _targets)
      get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
      if(NOT _dirs)
        continue()
      endif()
      set(_kept "${_dirs}")
      list(FILTER _kept EXCLUDE REGEX "^/opt/python/")
      if(NOT _kept STREQUAL _dirs)
        set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
        list(APPEND _fixed ${_target})
      endif()
    endforeach()
    list(LENGTH _fixed _count)
    message(STATUS "s2m: dropped /opt/python/ include paths of ${_count} imported targets")
  endfunction()
endif()

get_property(_s2m_deferred GLOBAL PROPERTY S2M_WHEEL_FIX_DEFERRED)
if(NOT _s2m_deferred)
  set_property(GLOBAL PROPERTY S2M_WHEEL_FIX_DEFERRED TRUE)
  cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL s2m_drop_wheel_builder_includes)
endif()
